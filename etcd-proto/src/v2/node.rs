//! [`Node`]: a v2 key or directory, and walks over its tree.

use serde::Deserialize;

/// A v2 key or directory as etcd returned it.
///
/// A directory read with `recursive` carries its whole subtree in
/// [`nodes`](Node::nodes); without it, only the direct children, each without
/// their own children.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The full key, e.g. `/dir/name`. The root directory has the key `/`.
    #[serde(default = "root_key")]
    pub key: String,
    /// The value; `None` for a directory.
    #[serde(default)]
    pub value: Option<String>,
    /// True for a directory.
    #[serde(default)]
    pub dir: bool,
    /// Seconds left before the key expires, if it has a TTL.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// When the key expires (RFC 3339 with nanoseconds), if it has a TTL.
    #[serde(default)]
    pub expiration: Option<String>,
    /// The etcd index that created the key.
    #[serde(default)]
    pub created_index: u64,
    /// The etcd index that last changed the key.
    #[serde(default)]
    pub modified_index: u64,
    /// The children of a directory (sorted only if the read asked for it).
    #[serde(default)]
    pub nodes: Vec<Node>,
}

fn root_key() -> String {
    "/".to_owned()
}

impl Node {
    /// The direct children of a directory; nothing for a key.
    ///
    /// ```
    /// # let dir: etcd_proto::v2::Node = serde_json::from_str(
    /// #   r#"{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1"},{"key":"/d/s","dir":true}]}"#).unwrap();
    /// let names: Vec<&str> = dir.children().map(|n| n.key.as_str()).collect();
    /// assert_eq!(names, ["/d/a", "/d/s"]);
    /// ```
    pub fn children(&self) -> std::slice::Iter<'_, Node> {
        self.nodes.iter()
    }

    /// Every node of the subtree, this one first, depth-first in the order etcd returned them.
    pub fn subtree(&self) -> Subtree<'_> {
        Subtree { stack: vec![self] }
    }

    /// Every key (non-directory) of the subtree, depth-first. A key yields
    /// itself; an empty directory yields nothing.
    ///
    /// ```
    /// # let empty: etcd_proto::v2::Node = serde_json::from_str(r#"{"key":"/e","dir":true}"#).unwrap();
    /// assert_eq!(empty.leaves().count(), 0);
    /// ```
    pub fn leaves(&self) -> impl Iterator<Item = &Node> {
        self.subtree().filter(|n| !n.dir)
    }

    /// The last segment of the key (`/dir/name` → `name`).
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or("")
    }
}

/// Depth-first walk of a node's subtree; see [`Node::subtree`].
#[derive(Debug, Clone)]
pub struct Subtree<'a> {
    stack: Vec<&'a Node>,
}

impl<'a> Iterator for Subtree<'a> {
    type Item = &'a Node;

    fn next(&mut self) -> Option<&'a Node> {
        let node = self.stack.pop()?;
        self.stack.extend(node.nodes.iter().rev());
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Node {
        serde_json::from_str(
            r#"{"key":"/t","dir":true,"nodes":[
                {"key":"/t/a","value":"1"},
                {"key":"/t/empty","dir":true},
                {"key":"/t/sub","dir":true,"nodes":[{"key":"/t/sub/b","value":"2"}]},
                {"key":"/t/c","value":""}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn subtree_is_preorder() {
        let keys: Vec<_> = tree().subtree().map(|n| n.key.clone()).collect();
        assert_eq!(
            keys,
            ["/t", "/t/a", "/t/empty", "/t/sub", "/t/sub/b", "/t/c"]
        );
    }

    #[test]
    fn leaves_skip_directories() {
        let t = tree();
        let keys: Vec<_> = t.leaves().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["/t/a", "/t/sub/b", "/t/c"]);
        let children: Vec<_> = t.children().map(|n| n.name()).collect();
        assert_eq!(children, ["a", "empty", "sub", "c"]);
    }

    #[test]
    fn a_key_is_its_own_leaf() {
        let key = Node {
            key: "/k".into(),
            value: Some("v".into()),
            ..Node::default()
        };
        assert_eq!(key.leaves().count(), 1);
        assert_eq!(key.children().count(), 0);
    }
}
