//! Changing the tags of a container group or an image cache after its create
//! (TagResources/UntagResources): what a change does to a resource's tags, the bound on how
//! many it may carry, and the keys berth's own virtual kubelet owns.

use crate::spec::Tag;

/// Most tags one resource carries (ECI's bound).
pub const MAX_TAGS_PER_RESOURCE: usize = 20;

/// Key prefix of the tags by which the virtual kubelet finds the group of each pod
/// (`k8s.pod.uid`, `k8s.pod.namespace`, `k8s.pod.name`). TagResources and UntagResources
/// refuse to set or remove them by name, and `All=true` keeps them: a group that lost them
/// would no longer be adopted by its pod, which would then create a second one.
pub const RESERVED_TAG_PREFIX: &str = "k8s.pod.";

/// Whether `key` is one of the virtual kubelet's own tag keys.
pub fn is_reserved_tag_key(key: &str) -> bool {
    key.starts_with(RESERVED_TAG_PREFIX)
}

/// The kinds of resources that carry tags, with ECI's names (`ResourceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagResourceType {
    ContainerGroup,
    ImageCache,
}

impl TagResourceType {
    pub const ALL: [TagResourceType; 2] = [Self::ContainerGroup, Self::ImageCache];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerGroup => "ContainerGroup",
            Self::ImageCache => "ImageCache",
        }
    }

    /// The type of ECI's name (case-sensitive, as ECI spells it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One change to the tags of each resource of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagChange {
    /// Adds these tags; a key the resource has already gets the new value.
    Set(Vec<Tag>),
    /// Removes the tags with these keys (keys the resource does not have are no error).
    Remove(Vec<String>),
    /// Removes every tag but the reserved ones ([`RESERVED_TAG_PREFIX`]).
    RemoveAll,
}

/// A change would leave a resource with more than [`MAX_TAGS_PER_RESOURCE`] tags.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the resource would carry {count} tags; at most {MAX_TAGS_PER_RESOURCE} are allowed")]
pub struct TooManyTags {
    pub count: usize,
}

impl TagChange {
    /// Applies the change to `tags` (keeping their order; a new key goes last). Returns
    /// whether anything changed; nothing changes on an error.
    pub fn apply(&self, tags: &mut Vec<Tag>) -> Result<bool, TooManyTags> {
        let before = tags.clone();
        let mut out = tags.clone();
        match self {
            Self::Set(new) => {
                for t in new {
                    match out.iter_mut().find(|o| o.key == t.key) {
                        Some(o) => o.value.clone_from(&t.value),
                        None => out.push(t.clone()),
                    }
                }
                if out.len() > MAX_TAGS_PER_RESOURCE {
                    return Err(TooManyTags { count: out.len() });
                }
            }
            Self::Remove(keys) => out.retain(|t| !keys.contains(&t.key)),
            Self::RemoveAll => out.retain(|t| is_reserved_tag_key(&t.key)),
        }
        let changed = out != before;
        *tags = out;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn set_replaces_a_value_and_appends_new_keys() {
        let mut t = vec![tag("a", "1"), tag("b", "2")];
        let c = TagChange::Set(vec![tag("b", "3"), tag("c", "4")]);
        assert!(c.apply(&mut t).unwrap());
        assert_eq!(t, vec![tag("a", "1"), tag("b", "3"), tag("c", "4")]);
        assert!(
            !c.apply(&mut t).unwrap(),
            "the same change again changes nothing"
        );
    }

    #[test]
    fn more_than_twenty_is_refused_and_changes_nothing() {
        let mut t: Vec<Tag> = (0..19).map(|i| tag(&format!("k{i}"), "v")).collect();
        let orig = t.clone();
        let c = TagChange::Set(vec![tag("x", "1"), tag("y", "2")]);
        assert_eq!(c.apply(&mut t), Err(TooManyTags { count: 21 }));
        assert_eq!(t, orig);
        // Replacing values of keys there are does not count twice.
        let c = TagChange::Set(vec![tag("k0", "n"), tag("x", "1")]);
        assert!(c.apply(&mut t).unwrap());
        assert_eq!(t.len(), 20);
    }

    #[test]
    fn remove_by_key_and_all_keeps_reserved_keys() {
        let mut t = vec![tag("a", "1"), tag("k8s.pod.uid", "u"), tag("b", "2")];
        assert!(TagChange::Remove(vec!["a".into(), "zz".into()])
            .apply(&mut t)
            .unwrap());
        assert_eq!(t, vec![tag("k8s.pod.uid", "u"), tag("b", "2")]);
        assert!(TagChange::RemoveAll.apply(&mut t).unwrap());
        assert_eq!(t, vec![tag("k8s.pod.uid", "u")]);
        assert!(!TagChange::RemoveAll.apply(&mut t).unwrap());
    }

    #[test]
    fn resource_types_are_eci_names() {
        assert_eq!(
            TagResourceType::parse("ContainerGroup"),
            Some(TagResourceType::ContainerGroup)
        );
        assert_eq!(
            TagResourceType::parse("ImageCache"),
            Some(TagResourceType::ImageCache)
        );
        assert_eq!(TagResourceType::parse("containergroup"), None);
        assert_eq!(TagResourceType::parse("DataCache"), None);
    }
}
