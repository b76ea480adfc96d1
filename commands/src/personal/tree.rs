//! The key tree of a workspace: contacts' data keys derived from one seed, punctured on erasure
//! (a GGM tree, a puncturable pseudorandom function; docs/adr/0009-data-keys-from-a-key-tree.md).
//!
//! A node covers every contact id that begins with its `prefix` (the id's first `depth` bits). A
//! child's seed is SHA-256 of its parent's and the next bit; the seed of a leaf (depth 128, one
//! contact id) gives the contact's data key. So any node that covers an id derives the same key for
//! it, and nothing derives a node from its children or siblings. Erasing a contact replaces the
//! node that covers it with the siblings along its path ([`Node::punctured`]): they cover all the
//! other ids as before, and no stored seed derives the erased one's key any more.
//!
//! Pure: no I/O. Nodes are stored sealed (`nodes`).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The depth of a leaf: the bits of a contact id.
pub const LEAF: u8 = 128;

/// A seed's derivations, told apart: a child on bit 0 or 1, or a leaf's data key.
const KEY: u8 = 2;

/// The seeds along the path from a node (whose `lo` is `from`) to the leaf of `id`.
#[derive(Clone)]
pub struct Path {
    /// The node's prefix and depth.
    from: (u128, u8),
    id: u128,
    /// `seeds[i]`: the seed at the node's depth + i, down to the leaf.
    seeds: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Path(to {}, {} seeds ***)", Uuid::from_u128(self.id), self.seeds.len())
    }
}

/// One node of a workspace's tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    depth: u8,
    /// The covered ids' first `depth` bits; the bits below are zero.
    prefix: u128,
    seed: [u8; 32],
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node(depth {}, lo {}, seed ***)", self.depth, self.lo())
    }
}

/// The ids below bit `depth` (the bits a node at that depth does not fix).
fn below(depth: u8) -> u128 {
    u128::MAX.checked_shr(u32::from(depth)).unwrap_or(0)
}

/// Bit `i` of `id`, the most significant first.
fn bit(id: u128, i: u8) -> u8 {
    ((id >> (127 - u32::from(i))) & 1) as u8
}

fn derive(seed: &[u8; 32], what: u8) -> [u8; 32] {
    Sha256::new().chain_update(b"blazz key tree").chain_update(seed).chain_update([what]).finalize().into()
}

impl Node {
    /// The root of a new tree: it covers every id.
    pub fn root(seed: [u8; 32]) -> Self {
        Self { depth: 0, prefix: 0, seed }
    }

    /// A stored node: `None` unless `lo` has no bits set below `depth` and `depth` is at most a leaf's.
    pub fn from_parts(lo: Uuid, depth: u8, seed: [u8; 32]) -> Option<Self> {
        let prefix = lo.as_u128();
        (depth <= LEAF && prefix & below(depth) == 0).then_some(Self { depth, prefix, seed })
    }

    /// The first id it covers (the order nodes are stored and looked up in).
    pub fn lo(&self) -> Uuid {
        Uuid::from_u128(self.prefix)
    }

    /// The last id it covers.
    pub fn hi(&self) -> Uuid {
        Uuid::from_u128(self.prefix | below(self.depth))
    }

    pub fn depth(&self) -> u8 {
        self.depth
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub fn covers(&self, id: Uuid) -> bool {
        id.as_u128() & !below(self.depth) == self.prefix
    }

    /// The data key of contact `id`, if this node covers it.
    pub fn key_of(&self, id: Uuid) -> Option<[u8; 32]> {
        self.key_along(id, &mut None)
    }

    /// [`Self::key_of`], starting from where the path to `id` leaves `last`'s, the path of the last
    /// id derived from this node (new contacts' ids share most of their first bits: time-ordered),
    /// which becomes `id`'s. Up to 128 hashes less per key.
    pub fn key_along(&self, id: Uuid, last: &mut Option<Path>) -> Option<[u8; 32]> {
        if !self.covers(id) {
            return None;
        }
        let id = id.as_u128();
        let mut path = match last.take() {
            Some(mut p) if p.from == (self.prefix, self.depth) => {
                let shared = (id ^ p.id).leading_zeros().min(u32::from(LEAF)) as u8;
                // Both ids are covered: they share at least the node's `depth` first bits.
                p.seeds.truncate(usize::from(shared.saturating_sub(self.depth)) + 1);
                p
            }
            _ => Path { from: (self.prefix, self.depth), id, seeds: vec![self.seed] },
        };
        path.id = id;
        for i in self.depth + path.seeds.len() as u8 - 1..LEAF {
            let next = path.seeds.last().map(|s| derive(s, bit(id, i)));
            path.seeds.extend(next);
        }
        let key = path.seeds.last().map(|leaf| derive(leaf, KEY));
        *last = Some(path);
        key
    }

    /// What replaces this node when `id` is erased: the siblings of `id`'s path below it, which
    /// together cover every id it covers but `id` (none for a leaf). `None` if it does not cover `id`.
    pub fn punctured(&self, id: Uuid) -> Option<Vec<Node>> {
        if !self.covers(id) {
            return None;
        }
        let id = id.as_u128();
        let mut seed = self.seed;
        let mut siblings = Vec::with_capacity(usize::from(LEAF - self.depth));
        for i in self.depth..LEAF {
            let b = bit(id, i);
            let path = id & !below(i);
            let other = 1 - b;
            siblings.push(Node {
                depth: i + 1,
                prefix: path | (u128::from(other) << (127 - u32::from(i))),
                seed: derive(&seed, other),
            });
            seed = derive(&seed, b);
        }
        Some(siblings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).chain((0..n).map(|_| Uuid::new_v4())).collect();
        ids.extend([Uuid::nil(), Uuid::max(), Uuid::from_u128(1 << 127), Uuid::from_u128((1 << 127) - 1)]);
        ids
    }

    /// The one node of `nodes` that covers `id` (they must never overlap).
    fn cover(nodes: &[Node], id: Uuid) -> Option<&Node> {
        let mut covering = nodes.iter().filter(|n| n.covers(id));
        let first = covering.next();
        assert!(covering.next().is_none(), "two nodes cover {id}");
        first
    }

    #[test]
    fn every_node_on_the_way_derives_the_same_key() {
        let root = Node::root([7; 32]);
        let other = Node::root([8; 32]);
        for id in ids(10) {
            let key = root.key_of(id).expect("the root covers every id");
            assert_ne!(Some(key), other.key_of(id), "another tree, another key");
            let (mut node, mut path) = (root.clone(), vec![]);
            while node.depth < LEAF {
                // Walk down by puncturing a neighbour: the node that still covers `id` is its ancestor.
                let neighbour = Uuid::from_u128(id.as_u128() ^ (1 << (127 - u32::from(node.depth))));
                let rest = node.punctured(neighbour).expect("covers the neighbour");
                node = cover(&rest, id).expect("the id stays covered").clone();
                assert_eq!(node.key_of(id), Some(key), "at depth {}", node.depth);
                path.push(node.depth);
            }
            assert_eq!(path.len(), 128);
            assert_eq!((node.lo(), node.hi()), (id, id), "a leaf covers one id");
        }
    }

    #[test]
    fn keys_along_the_last_path_are_the_keys() {
        let node = Node::root([9; 32]).punctured(Uuid::nil()).unwrap().remove(0);
        let (mut last, mut other) = (None, None);
        // Time-ordered ids (long shared prefixes), random ones, one twice, one the node does not cover.
        let mut all: Vec<Uuid> = ids(30);
        all.insert(5, all[4]);
        for id in all {
            assert_eq!(node.key_along(id, &mut last), node.key_of(id), "{id}");
            if node.covers(id) {
                assert_eq!(last.as_ref().map(|p| p.seeds.len()), Some(usize::from(LEAF - node.depth) + 1));
            }
        }
        // A path from another node is not reused.
        let root = Node::root([9; 32]);
        let id = Uuid::max();
        assert_eq!(root.key_along(id, &mut other), node.key_of(id));
        assert_eq!(node.key_along(id, &mut other), node.key_of(id));
    }

    #[test]
    fn a_punctured_id_has_no_key_and_every_other_id_keeps_its_own() {
        let root = Node::root([1; 32]);
        let all = ids(40);
        let mut nodes = vec![root.clone()];
        for erased in all.iter().step_by(3) {
            let at = nodes.iter().position(|n| n.covers(*erased)).expect("covered before");
            let node = nodes.swap_remove(at);
            nodes.extend(node.punctured(*erased).expect("covers it"));
            assert!(cover(&nodes, *erased).is_none(), "{erased} is no longer covered");
        }
        for (i, id) in all.iter().enumerate() {
            match i % 3 {
                0 => assert!(cover(&nodes, *id).is_none()),
                _ => assert_eq!(cover(&nodes, *id).and_then(|n| n.key_of(*id)), root.key_of(*id), "{id}"),
            }
        }
        // A node is stored by its range: the ranges never overlap.
        nodes.sort_by_key(|n| n.lo());
        assert!(nodes.windows(2).all(|w| w[0].hi() < w[1].lo()));
    }

    #[test]
    fn a_leaf_punctured_leaves_nothing_and_a_node_only_punctures_what_it_covers() {
        let id = Uuid::now_v7();
        let siblings = Node::root([3; 32]).punctured(id).unwrap();
        assert_eq!(siblings.len(), 128);
        let leaf_parent = siblings.last().unwrap();
        assert_eq!(leaf_parent.depth(), LEAF);
        assert_eq!(leaf_parent.punctured(leaf_parent.lo()), Some(vec![]));
        assert_eq!(leaf_parent.punctured(id), None);
        assert_eq!(leaf_parent.key_of(id), None);
    }

    #[test]
    fn stored_parts_are_checked() {
        let node = Node::root([2; 32]).punctured(Uuid::max()).unwrap().remove(5);
        assert_eq!(Node::from_parts(node.lo(), node.depth(), *node.seed()), Some(node.clone()));
        assert_eq!(Node::from_parts(Uuid::max(), 5, [0; 32]), None, "bits set below the depth");
        assert_eq!(Node::from_parts(Uuid::nil(), 129, [0; 32]), None);
        assert!(Node::from_parts(Uuid::max(), LEAF, [0; 32]).is_some());
    }
}
