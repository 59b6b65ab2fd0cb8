//! Tags changed after a create (TagResources/UntagResources) and listed (ListTagResources),
//! for container groups and image caches. A change to a batch of resources is one write
//! transaction: every resource must be the account's and keep at most
//! [`MAX_TAGS_PER_RESOURCE`](berth_core::MAX_TAGS_PER_RESOURCE) tags, or nothing is written.
//! A group's tags are written to `billed_groups` in the same transaction, so a bill grouped
//! by tag always sees the tags the group has now (or had when it was deleted).

use berth_core::{GroupRecord, ImageCacheRecord, Tag, TagChange, TagResourceType};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::seal::Sealer;
use crate::StoreError;

/// Which tags a listing returns: those of the account's resources of one type, only of
/// these ids (empty: all) and only of resources carrying every one of these tags (a key
/// with any value when the value is `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagQuery {
    pub ids: Vec<String>,
    pub tags: Vec<(String, Option<String>)>,
}

/// One tag of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRow {
    pub resource_id: String,
    pub key: String,
    pub value: String,
}

/// Where a listing goes on: after the tag `key`=`value` of the resource whose row is `seq`.
/// Tags are listed by resource (oldest first), each resource's by key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagCursor {
    seq: i64,
    key: String,
    value: String,
}

/// Longest token [`TagCursor::parse`] reads: a sequence number and a key and value of at
/// most 128 characters (4 bytes each), hex-encoded.
const MAX_TOKEN_LEN: usize = 20 + 2 + 4 * 128 * 2 * 2;

impl TagCursor {
    /// The row of the resource the listing goes on after.
    pub(crate) fn seq(&self) -> i64 {
        self.seq
    }

    /// The opaque text handed out as `NextToken`.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.seq, hex(&self.key), hex(&self.value))
    }

    /// A token as [`encode`](Self::encode) makes it; `None` for anything else. A token that
    /// parses but was not handed out only moves the listing within the caller's own tags.
    pub fn parse(token: &str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (seq, key, value) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            seq: seq.parse().ok()?,
            key: unhex(key)?,
            value: unhex(value)?,
        })
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// One page of tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagPage {
    pub rows: Vec<TagRow>,
    /// Pass back (encoded) to get the next page; `None` when this was the last.
    pub next: Option<TagCursor>,
}

/// Applies `change` to each of `ids` (resources of `account` of type `kind`) in one
/// transaction: [`StoreError::NotFound`] / [`StoreError::CacheNotFound`] for an id that is
/// not the account's, [`StoreError::TooManyTags`] for a resource that would carry too many;
/// nothing is written then.
pub(crate) fn change(
    conn: &mut Connection,
    sealer: &Sealer,
    account: &str,
    kind: TagResourceType,
    ids: &[String],
    change: &TagChange,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut seen: Vec<&String> = Vec::with_capacity(ids.len());
    for id in ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        match kind {
            TagResourceType::ContainerGroup => change_group(&tx, sealer, account, id, change)?,
            TagResourceType::ImageCache => change_cache(&tx, sealer, account, id, change)?,
        }
    }
    tx.commit()?;
    Ok(())
}

fn apply(id: &str, tags: &mut Vec<Tag>, change: &TagChange) -> Result<bool, StoreError> {
    change.apply(tags).map_err(|e| StoreError::TooManyTags {
        id: id.to_string(),
        count: e.count,
    })
}

fn change_group(
    tx: &Connection,
    sealer: &Sealer,
    account: &str,
    id: &str,
    change: &TagChange,
) -> Result<(), StoreError> {
    let json: Option<String> = tx
        .prepare_cached("SELECT record FROM groups WHERE id = ?1 AND account = ?2")?
        .query_row(params![id, account], |r| r.get(0))
        .optional()?;
    let json = json.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let mut rec: GroupRecord = serde_json::from_str(&json)?;
    sealer.open_group(&mut rec)?;
    if !apply(id, &mut rec.spec.tags, change)? {
        return Ok(());
    }
    tx.prepare_cached("UPDATE groups SET record = ?2, changed = ?3, revision = ?4 WHERE id = ?1")?
        .execute(params![
            id,
            sealer.group_json(&rec)?,
            chrono::Utc::now().timestamp_millis(),
            crate::revision::next(tx)?
        ])?;
    crate::billed::put(tx, &rec)
}

fn change_cache(
    tx: &Connection,
    sealer: &Sealer,
    account: &str,
    id: &str,
    change: &TagChange,
) -> Result<(), StoreError> {
    let json: Option<String> = tx
        .prepare_cached("SELECT record FROM image_caches WHERE id = ?1 AND account = ?2")?
        .query_row(params![id, account], |r| r.get(0))
        .optional()?;
    let json = json.ok_or_else(|| StoreError::CacheNotFound(id.to_string()))?;
    let mut rec: ImageCacheRecord = serde_json::from_str(&json)?;
    sealer.open_cache(&mut rec)?;
    if !apply(id, &mut rec.tags, change)? {
        return Ok(());
    }
    tx.prepare_cached("UPDATE image_caches SET record = ?2 WHERE id = ?1")?
        .execute(params![id, sealer.cache_json(&rec)?])?;
    Ok(())
}

/// A page of at most `limit` (at least 1) tags of `account`'s resources of type `kind`
/// matching `q`, after `after`.
pub(crate) fn list(
    conn: &Connection,
    account: &str,
    kind: TagResourceType,
    q: &TagQuery,
    limit: usize,
    after: Option<&TagCursor>,
) -> Result<TagPage, StoreError> {
    let (table, path) = match kind {
        TagResourceType::ContainerGroup => ("groups", "$.spec.tags"),
        TagResourceType::ImageCache => ("image_caches", "$.tags"),
    };
    let mut sql = format!(
        "SELECT seq, id, json_extract(record, '{path}') FROM {table} \
         WHERE account = ? AND seq >= CAST(? AS INTEGER)"
    );
    let mut args = vec![account.to_string(), after.map_or(0, |c| c.seq).to_string()];
    if !q.ids.is_empty() {
        sql.push_str(&format!(
            " AND id IN ({})",
            vec!["?"; q.ids.len()].join(",")
        ));
        args.extend(q.ids.iter().cloned());
    }
    sql.push_str(" ORDER BY seq");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut read = Vec::new();
    let mut page = None;
    while let Some(row) = rows.next()? {
        let tags = crate::billed::tags(row.get_ref(2)?.as_str().ok());
        read.push((row.get(0)?, row.get(1)?, tags));
        // Decided a batch at a time: reading stops once the page is full.
        if read.len() >= 256 {
            if let Some(p) = page_of(std::mem::take(&mut read), q, limit, after, &mut page) {
                return Ok(p);
            }
        }
    }
    Ok(page_of(read, q, limit, after, &mut page).unwrap_or_else(|| last_page(page)))
}

/// The page of a listing whose rows all were read: nothing follows it.
pub(crate) fn last_page(page: Option<TagPage>) -> TagPage {
    let mut page = page.unwrap_or_default();
    page.next = None;
    page
}

/// Goes on with a listing over `rows` (resources by `seq`, oldest first, each with its id
/// and tags), the page so far in `page`; the page when it is full (and more follow).
pub(crate) fn page_of(
    rows: Vec<(i64, String, Vec<Tag>)>,
    q: &TagQuery,
    limit: usize,
    after: Option<&TagCursor>,
    page: &mut Option<TagPage>,
) -> Option<TagPage> {
    let limit = limit.max(1);
    let page = page.get_or_insert_with(TagPage::default);
    for (seq, id, mut tags) in rows {
        let carries_all = q.tags.iter().all(|(k, v)| {
            tags.iter()
                .any(|t| &t.key == k && v.as_ref().is_none_or(|v| &t.value == v))
        });
        if !carries_all {
            continue;
        }
        tags.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
        for t in tags {
            if let Some(c) = after {
                if seq == c.seq && (&t.key, &t.value) <= (&c.key, &c.value) {
                    continue;
                }
            }
            if page.rows.len() == limit {
                // `next` holds the last row's cursor while the page fills.
                return Some(std::mem::take(page));
            }
            page.next = Some(TagCursor {
                seq,
                key: t.key.clone(),
                value: t.value.clone(),
            });
            page.rows.push(TagRow {
                resource_id: id.clone(),
                key: t.key,
                value: t.value,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        let c = TagCursor {
            seq: 42,
            key: "team.é".into(),
            value: "a.b:c".into(),
        };
        assert_eq!(TagCursor::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "1",
            "1.2",
            "x.61.62",
            "-1.61.62",
            "1.6.62",
            "1.zz.62",
            "1.61.62.63",
            "1.ff.62",
            "99999999999999999999999.61.62",
        ] {
            assert_eq!(TagCursor::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TagCursor::parse(&"1".repeat(MAX_TOKEN_LEN + 1)), None);
    }
}
