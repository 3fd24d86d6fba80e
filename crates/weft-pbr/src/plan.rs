//! Walk computation: the cheapest walk from one node to another that
//! processes at one site of each stage, in order (Choi, Turner and Wolf's
//! layered graph).
//!
//! Layer *k* of the layered graph is "k stages done". Within a layer, the
//! walk moves along links at their cost; at a site of stage *k* it may step
//! to layer *k + 1* at the node's processing cost (per class, when the node
//! has one for the stage's class). Dijkstra from (from, 0) to (to, stages)
//! gives the optimum, which may visit a node several times — PromethOS
//! figure 2: R1:R4:R3:R4:R7:R8:R7.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// A topology to plan on: named nodes with processing costs, undirected
/// links with costs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    adj: Vec<Vec<(usize, u64)>>,
}

#[derive(Clone, Debug)]
struct NodeInfo {
    name: String,
    cost: u64,
    class_costs: HashMap<String, u64>,
}

/// Error returned by [`plan`] and the [`Graph`] builders.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A name that is not a node of the graph.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    /// A stage with no sites.
    #[error("stage {0} has no sites")]
    EmptyStage(usize),
    /// No walk reaches the destination through every stage.
    #[error("no walk reaches the destination through every stage")]
    Unreachable,
    /// A stage written wrongly (`CLASS@SITE,SITE`).
    #[error("bad stage {0:?}: expected CLASS@SITE[,SITE…]")]
    BadStage(String),
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Add a node (or set the processing cost of an existing one); returns
    /// its index.
    pub fn add_node(&mut self, name: &str, cost: u64) -> usize {
        if let Some(&i) = self.index.get(name) {
            self.nodes[i].cost = cost;
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(NodeInfo {
            name: name.to_string(),
            cost,
            class_costs: HashMap::new(),
        });
        self.adj.push(Vec::new());
        self.index.insert(name.to_string(), i);
        i
    }

    /// Processing `class` at `node` costs `cost` (instead of the node's
    /// cost).
    pub fn set_class_cost(&mut self, node: &str, class: &str, cost: u64) -> Result<(), PlanError> {
        let i = self.node(node)?;
        self.nodes[i].class_costs.insert(class.to_string(), cost);
        Ok(())
    }

    /// An undirected link between two nodes.
    pub fn add_link(&mut self, a: &str, b: &str, cost: u64) -> Result<(), PlanError> {
        let (a, b) = (self.node(a)?, self.node(b)?);
        self.adj[a].push((b, cost));
        self.adj[b].push((a, cost));
        Ok(())
    }

    /// Index of a node.
    pub fn node(&self, name: &str) -> Result<usize, PlanError> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| PlanError::UnknownNode(name.to_string()))
    }

    /// Node names, in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// Cheapest link between two nodes, if linked.
    pub fn link_cost(&self, a: &str, b: &str) -> Option<u64> {
        let (a, b) = (self.node(a).ok()?, self.node(b).ok()?);
        self.adj[a].iter().filter(|(m, _)| *m == b).map(|(_, c)| *c).min()
    }

    /// What processing `class` at `node` costs.
    pub fn processing_cost(&self, node: &str, class: Option<&str>) -> Option<u64> {
        let n = &self.nodes[self.node(node).ok()?];
        Some(class.and_then(|c| n.class_costs.get(c).copied()).unwrap_or(n.cost))
    }
}

/// One processing stage: the sites that may do it, and the class (for
/// per-class costs and for the PLUGIN objects of the path).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Stage {
    /// Class to run (`ENCRYPT`), if named.
    pub class: Option<String>,
    /// Candidate nodes.
    pub sites: Vec<String>,
}

impl Stage {
    /// A stage of `class` at one of `sites`.
    pub fn new(class: Option<&str>, sites: &[&str]) -> Stage {
        Stage {
            class: class.map(str::to_string),
            sites: sites.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `CLASS@SITE,SITE` (the CLI's `--process ENCRYPT@R2,R3`), or just
    /// `SITE,SITE`.
    pub fn parse(s: &str) -> Result<Stage, PlanError> {
        let (class, sites) = match s.split_once('@') {
            Some((c, rest)) if !c.is_empty() => (Some(c.to_string()), rest),
            Some(_) => return Err(PlanError::BadStage(s.to_string())),
            None => (None, s),
        };
        let sites: Vec<String> = sites.split(',').map(|x| x.trim().to_string()).collect();
        if sites.iter().any(String::is_empty) {
            return Err(PlanError::BadStage(s.to_string()));
        }
        Ok(Stage { class, sites })
    }
}

impl From<Vec<String>> for Stage {
    fn from(sites: Vec<String>) -> Stage {
        Stage { class: None, sites }
    }
}

/// The answer: the walk, its cost, and where each stage is processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Node names, first to last; consecutive duplicates collapsed (two
    /// stages at one visit share it).
    pub hops: Vec<String>,
    /// Link costs plus processing costs.
    pub cost: u64,
    /// For stage *i*, the index in `hops` of the visit that processes it
    /// (non-decreasing).
    pub processing: Vec<usize>,
}

impl Walk {
    /// `R1:R4:R3:R4:R7:R8:R7` (PromethOS' form).
    pub fn to_colon_string(&self) -> String {
        self.hops.join(":")
    }
}

/// The minimum-cost walk from `from` to `to` processing stage 0 at one of
/// its sites, then stage 1, …, in order. Ties are broken deterministically.
pub fn plan(graph: &Graph, from: &str, to: &str, stages: &[Stage]) -> Result<Walk, PlanError> {
    let n = graph.nodes.len();
    let (src, dst) = (graph.node(from)?, graph.node(to)?);
    let k = stages.len();
    // sites[l][node]: processing cost of stage l at node, if a site.
    let mut sites: Vec<Vec<Option<u64>>> = Vec::with_capacity(k);
    for (l, st) in stages.iter().enumerate() {
        if st.sites.is_empty() {
            return Err(PlanError::EmptyStage(l));
        }
        let mut v = vec![None; n];
        for s in &st.sites {
            let i = graph.node(s)?;
            v[i] = graph.processing_cost(s, st.class.as_deref());
        }
        sites.push(v);
    }
    let state = |node: usize, layer: usize| layer * n + node;
    let mut dist = vec![u64::MAX; n * (k + 1)];
    let mut prev = vec![usize::MAX; dist.len()];
    let s0 = state(src, 0);
    dist[s0] = 0;
    let mut heap = BinaryHeap::from([Reverse((0u64, s0))]);
    while let Some(Reverse((d, s))) = heap.pop() {
        if d > dist[s] {
            continue;
        }
        let (node, layer) = (s % n, s / n);
        let mut relax = |s2: usize, c: u64| {
            let d2 = d.saturating_add(c);
            if d2 < dist[s2] {
                dist[s2] = d2;
                prev[s2] = s;
                heap.push(Reverse((d2, s2)));
            }
        };
        if layer < k {
            if let Some(c) = sites[layer][node] {
                relax(state(node, layer + 1), c);
            }
        }
        for &(m, c) in &graph.adj[node] {
            relax(state(m, layer), c);
        }
    }
    let goal = state(dst, k);
    if dist[goal] == u64::MAX {
        return Err(PlanError::Unreachable);
    }
    let mut states = Vec::new();
    let mut s = goal;
    while s != usize::MAX {
        states.push(s);
        s = prev[s];
    }
    states.reverse();
    let mut hops: Vec<String> = Vec::new();
    let mut processing = Vec::with_capacity(k);
    let mut last: Option<usize> = None;
    for (j, &s) in states.iter().enumerate() {
        let node = s % n;
        if last != Some(node) {
            hops.push(graph.nodes[node].name.clone());
            last = Some(node);
        }
        if j > 0 && s / n > states[j - 1] / n {
            processing.push(hops.len() - 1);
        }
    }
    Ok(Walk {
        hops,
        cost: dist[goal],
        processing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// PromethOS figure 2, as in `topologies/promethos-fig2.toml`.
    fn fig2() -> Graph {
        let mut g = Graph::new();
        for (n, c) in [
            ("R1", 0),
            ("R2", 10),
            ("R3", 2),
            ("R4", 0),
            ("R5", 0),
            ("R6", 10),
            ("R7", 0),
            ("R8", 2),
        ] {
            g.add_node(n, c);
        }
        for (a, b, c) in [
            ("R1", "R2", 3),
            ("R1", "R4", 1),
            ("R2", "R3", 1),
            ("R3", "R4", 1),
            ("R2", "R5", 2),
            ("R4", "R5", 2),
            ("R4", "R7", 1),
            ("R5", "R6", 1),
            ("R6", "R7", 1),
            ("R7", "R8", 1),
            ("R6", "R8", 2),
        ] {
            g.add_link(a, b, c).unwrap();
        }
        g
    }

    #[test]
    fn figure_2() {
        let g = fig2();
        let stages = [
            Stage::parse("ENCRYPT@R2,R3").unwrap(),
            Stage::parse("DECRYPT@R6,R8").unwrap(),
        ];
        let w = plan(&g, "R1", "R7", &stages).unwrap();
        assert_eq!(w.to_colon_string(), "R1:R4:R3:R4:R7:R8:R7");
        assert_eq!(w.cost, 10);
        assert_eq!(w.processing, vec![2, 5]);
        assert_eq!(plan(&g, "R1", "R7", &[]).unwrap().cost, 2);
        assert_eq!(plan(&g, "R1", "R7", &[]).unwrap().to_colon_string(), "R1:R4:R7");
    }

    #[test]
    fn class_costs_change_the_answer() {
        let mut g = fig2();
        // ENCRYPT is expensive on R3: R2 becomes the better site.
        g.set_class_cost("R3", "ENCRYPT", 100).unwrap();
        g.set_class_cost("R2", "ENCRYPT", 0).unwrap();
        let stages = [
            Stage::parse("ENCRYPT@R2,R3").unwrap(),
            Stage::parse("DECRYPT@R6,R8").unwrap(),
        ];
        let w = plan(&g, "R1", "R7", &stages).unwrap();
        assert_eq!(w.hops[w.processing[0]], "R2");
        // R1-R2 (3), ENCRYPT at R2 (0), R2-R3-R4-R7-R8 (4), DECRYPT at R8 (2), R8-R7 (1).
        assert_eq!(w.cost, 10);
    }

    #[test]
    fn two_stages_at_one_visit_and_at_the_ends() {
        let g = fig2();
        let w = plan(&g, "R3", "R3", &[Stage::new(None, &["R3"]), Stage::new(None, &["R3"])]).unwrap();
        assert_eq!(w.hops, vec!["R3"]);
        assert_eq!(w.processing, vec![0, 0]);
        assert_eq!(w.cost, 4);
    }

    #[test]
    fn errors() {
        let g = fig2();
        assert_eq!(plan(&g, "R9", "R7", &[]), Err(PlanError::UnknownNode("R9".into())));
        assert_eq!(
            plan(&g, "R1", "R7", &[Stage::new(None, &["X"])]),
            Err(PlanError::UnknownNode("X".into()))
        );
        assert_eq!(plan(&g, "R1", "R7", &[Stage::default()]), Err(PlanError::EmptyStage(0)));
        let mut g = fig2();
        g.add_node("island", 0);
        assert_eq!(plan(&g, "R1", "island", &[]), Err(PlanError::Unreachable));
        assert!(Stage::parse("@R1").is_err());
        assert!(Stage::parse("X@R1,,R2").is_err());
        assert_eq!(Stage::parse("R1,R2").unwrap().sites, vec!["R1", "R2"]);
    }

    /// The reference: all-pairs shortest paths (Floyd–Warshall), then every
    /// choice of one site per stage.
    fn brute_force(
        n: usize,
        costs: &[u64],
        links: &[(usize, usize, u64)],
        from: usize,
        to: usize,
        stages: &[Vec<usize>],
    ) -> Option<u64> {
        const INF: u64 = u64::MAX / 4;
        let mut d = vec![vec![INF; n]; n];
        for (i, row) in d.iter_mut().enumerate() {
            row[i] = 0;
        }
        for &(a, b, c) in links {
            d[a][b] = d[a][b].min(c);
            d[b][a] = d[b][a].min(c);
        }
        for m in 0..n {
            for i in 0..n {
                for j in 0..n {
                    d[i][j] = d[i][j].min(d[i][m] + d[m][j]);
                }
            }
        }
        let mut best = INF;
        let mut choice = vec![0usize; stages.len()];
        loop {
            let mut at = from;
            let mut c: u64 = 0;
            for (l, &ci) in choice.iter().enumerate() {
                let s = stages[l][ci];
                c = c.saturating_add(d[at][s]).saturating_add(costs[s]);
                at = s;
            }
            c = c.saturating_add(d[at][to]);
            best = best.min(c);
            // Next choice (odometer).
            let mut l = 0;
            loop {
                if l == stages.len() {
                    return (best < INF).then_some(best);
                }
                choice[l] += 1;
                if choice[l] < stages[l].len() {
                    break;
                }
                choice[l] = 0;
                l += 1;
            }
        }
    }

    /// Nodes, their costs, links, from, to, stages.
    type Case = (usize, Vec<u64>, Vec<(usize, usize, u64)>, usize, usize, Vec<Vec<usize>>);

    fn arb_case() -> impl Strategy<Value = Case> {
        (2usize..7).prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec(0u64..10, n),
                proptest::collection::vec((0..n, 0..n, 0u64..10), 0..12),
                0..n,
                0..n,
                proptest::collection::vec(proptest::collection::vec(0..n, 1..4), 0..4),
            )
        })
    }

    proptest! {
        #[test]
        fn matches_brute_force((n, costs, links, from, to, stages) in arb_case()) {
            let mut g = Graph::new();
            let name = |i: usize| format!("N{i}");
            for (i, c) in costs.iter().enumerate() {
                g.add_node(&name(i), *c);
            }
            for &(a, b, c) in &links {
                g.add_link(&name(a), &name(b), c).unwrap();
            }
            let st: Vec<Stage> = stages.iter().map(|s| Stage { class: None, sites: s.iter().map(|&i| name(i)).collect() }).collect();
            let want = brute_force(n, &costs, &links, from, to, &stages);
            match plan(&g, &name(from), &name(to), &st) {
                Err(PlanError::Unreachable) => prop_assert_eq!(want, None),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
                Ok(w) => {
                    prop_assert_eq!(Some(w.cost), want);
                    // The walk is real and costs what it says.
                    prop_assert_eq!(w.hops.first(), Some(&name(from)));
                    prop_assert_eq!(w.hops.last(), Some(&name(to)));
                    let mut c = 0;
                    for p in w.hops.windows(2) {
                        prop_assert_ne!(&p[0], &p[1]);
                        c += g.link_cost(&p[0], &p[1]).expect("consecutive hops are linked");
                    }
                    prop_assert_eq!(w.processing.len(), st.len());
                    for (l, &j) in w.processing.iter().enumerate() {
                        prop_assert!(l == 0 || w.processing[l - 1] <= j);
                        prop_assert!(st[l].sites.contains(&w.hops[j]));
                        c += g.processing_cost(&w.hops[j], None).unwrap();
                    }
                    prop_assert_eq!(c, w.cost);
                }
            }
        }
    }
}
