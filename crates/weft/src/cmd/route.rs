//! `weft route add|replace|ls|del` in the manner of `ip route`: `add`
//! refuses a prefix that has a route (any kind, connected ones too) as `ip
//! route add` does ("RTNETLINK answers: File exists"); `replace` adds or
//! overwrites it.

use crate::cmd::common::client;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::net::IpAddr;
use std::path::PathBuf;
use weft_control::api::{Done, RouteDelete, RouteRequest, RouteView};
use weft_control::client::ClientError;
use weft_control::config::words::{format_route_prefix, parse_route_prefix};
use weft_dataplane::RouteKind;

#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// Add a static route: PREFIX [via GW] [dev PORT] (PREFIX may be
    /// `default`); refused if PREFIX has a route (see `replace`).
    Add {
        /// PREFIX [via GW] [dev PORT]
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Add a static route, or replace the route PREFIX has: PREFIX [via GW] [dev PORT].
    #[command(alias = "change")]
    Replace {
        /// PREFIX [via GW] [dev PORT]
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// List routes.
    #[command(alias = "list", alias = "show")]
    Ls,
    /// Remove the route for PREFIX.
    #[command(alias = "rm")]
    Del {
        /// Prefix or `default`.
        prefix: String,
    },
}

pub async fn run(cmd: RouteCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    match cmd {
        RouteCmd::Add { words } => {
            let req = parse_add(&words, false)?;
            let c = client(node)?;
            match c.post::<_, Done>("/v1/routes", &req).await {
                Err(ClientError::Api { status, message }) if status.as_u16() == 409 => bail!(
                    "{message}: change it with `weft route replace {}` or remove it with `weft route del {}` first",
                    words.join(" "),
                    req.prefix
                ),
                r => r?,
            };
        }
        RouteCmd::Replace { words } => {
            let req = parse_add(&words, true)?;
            let c = client(node)?;
            let _: Done = c.post("/v1/routes", &req).await?;
        }
        RouteCmd::Ls => {
            let c = client(node)?;
            let rs: Vec<RouteView> = c.get("/v1/routes").await?;
            for r in rs {
                println!("{}", line(&r));
            }
        }
        RouteCmd::Del { prefix } => {
            parse_route_prefix(&prefix, None)?;
            let c = client(node)?;
            let _: Done = c.delete("/v1/routes", Some(&RouteDelete { prefix })).await?;
        }
    }
    Ok(())
}

fn parse_add(words: &[String], replace: bool) -> anyhow::Result<RouteRequest> {
    let mut it = words.iter();
    let prefix = it.next().context("route add needs a PREFIX")?.clone();
    let mut via: Option<IpAddr> = None;
    let mut port = None;
    while let Some(w) = it.next() {
        match w.as_str() {
            "via" => {
                let g = it.next().context("`via` needs a gateway address")?;
                via = Some(
                    g.parse()
                        .map_err(|_| anyhow::anyhow!("bad gateway {g:?}: expected an IP address"))?,
                );
            }
            "dev" => port = Some(it.next().context("`dev` needs a port name")?.clone()),
            other => bail!("unexpected word {other:?}: expected `via GW` or `dev PORT`"),
        }
    }
    if via.is_none() && port.is_none() {
        bail!("route {prefix}: give `via GW` and/or `dev PORT`");
    }
    parse_route_prefix(&prefix, via)?;
    Ok(RouteRequest {
        prefix,
        via,
        port,
        replace,
    })
}

fn line(r: &RouteView) -> String {
    let mut s = format_route_prefix(&r.prefix);
    if let Some(v) = r.via {
        s.push_str(&format!(" via {v}"));
    }
    s.push_str(&format!(" dev {}", r.port));
    match r.kind {
        RouteKind::Connected => s.push_str(" proto kernel scope link"),
        RouteKind::Static => s.push_str(" proto static"),
        RouteKind::Local => s.push_str(" proto kernel scope host"),
    }
    s
}
