//! ListTagResources' answer (TagResources and UntagResources answer a bare `RequestId`).

use serde::{Deserialize, Serialize};

/// ListTagResources: one row per tag of each resource listed; `NextToken` is empty on the
/// last page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListTagResourcesResponse {
    pub request_id: String,
    pub next_token: String,
    pub tag_resources: Vec<TagResource>,
}

/// One entry of `TagResources[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagResource {
    pub resource_id: String,
    /// `ContainerGroup` or `ImageCache`.
    pub resource_type: String,
    pub tag_key: String,
    pub tag_value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_sdk_models() {
        let r = ListTagResourcesResponse {
            request_id: "r".into(),
            next_token: String::new(),
            tag_resources: vec![TagResource {
                resource_id: "eci-a".into(),
                resource_type: "ContainerGroup".into(),
                tag_key: "k".into(),
                tag_value: "v".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"RequestId": "r", "NextToken": "", "TagResources": [
                {"ResourceId": "eci-a", "ResourceType": "ContainerGroup",
                 "TagKey": "k", "TagValue": "v"}]})
        );
    }
}
