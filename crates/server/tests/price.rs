//! DescribeContainerGroupPrice over the signed API: ECI's own example, spot prices, the
//! operator's catalog per region, and refusals.

mod common;

use std::sync::Arc;

use berth_client::ClientError;
use common::{p, serve_with, NullNode, Served};

fn api_err(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            code,
            message,
            ..
        } => (status, code, message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn prices_a_size_with_spot_prices() {
    let s = serve_with(Arc::new(NullNode)).await;
    let v = s
        .client
        .call(
            "DescribeContainerGroupPrice",
            &p(&[("RegionId", "local"), ("Cpu", "2.0"), ("Memory", "4.0")]),
        )
        .await
        .unwrap();
    assert!(v["RequestId"].as_str().is_some_and(|r| !r.is_empty()));
    let price = &v["PriceInfo"]["Price"];
    assert_eq!(price["Currency"], "CNY");
    assert_eq!(price["TradePrice"].to_string(), "0.00012252");
    assert!(v["PriceInfo"]["SpotPrices"]["SpotPrice"]
        .as_array()
        .unwrap()
        .is_empty());

    let v = s
        .client
        .call(
            "DescribeContainerGroupPrice",
            &p(&[
                ("RegionId", "local"),
                ("Cpu", "1.5"),
                ("Memory", "3"),
                ("SpotStrategy", "SpotWithPriceLimit"),
                ("SpotPriceLimit", "0.2"),
                ("ZoneId", "local-b"),
            ]),
        )
        .await
        .unwrap();
    // 1.5 vCPU and 3 GiB round up to 2 vCPU and 4 GiB.
    assert_eq!(
        v["PriceInfo"]["Price"]["TradePrice"].to_string(),
        "0.00012252"
    );
    let spot = &v["PriceInfo"]["SpotPrices"]["SpotPrice"][0];
    assert_eq!(spot["InstanceType"], "2-4Gi");
    assert_eq!(spot["ZoneId"], "local-b");
    assert_eq!(spot["OriginPrice"].to_string(), "0.441072");
    assert_eq!(spot["SpotPrice"].to_string(), "0.1323216");
}

async fn ask(s: &Served, region: &str) -> Result<serde_json::Value, ClientError> {
    s.client
        .call(
            "DescribeContainerGroupPrice",
            &p(&[("RegionId", region), ("Cpu", "2"), ("Memory", "4")]),
        )
        .await
}

#[tokio::test]
async fn the_operators_catalog_per_region() {
    let s = serve_with(Arc::new(NullNode)).await;
    let catalog = berth_control::parse_prices(
        "[default]\ncurrency = \"USD\"\nvcpu_second = \"0.0000077\"\nmemory_gib_second = \"0.00000096\"\n\
         [region.cn-hangzhou]\ncurrency = \"CNY\"\nvcpu_second = \"0.000049\"\nmemory_gib_second = \"0.00000613\"\n",
    )
    .unwrap();
    s.control.set_prices(catalog);
    let v = ask(&s, "local").await.unwrap();
    assert_eq!(v["PriceInfo"]["Price"]["Currency"], "USD");
    // 2 × 0.0000077 + 4 × 0.00000096
    assert_eq!(
        v["PriceInfo"]["Price"]["TradePrice"].to_string(),
        "0.00001924"
    );
    let v = ask(&s, "cn-hangzhou").await.unwrap();
    assert_eq!(v["PriceInfo"]["Price"]["Currency"], "CNY");
    assert_eq!(
        v["PriceInfo"]["Price"]["TradePrice"].to_string(),
        "0.00012252"
    );
    let (st, code, msg) = api_err(ask(&s, "elsewhere").await.unwrap_err());
    assert_eq!(
        (st, code.as_str()),
        (400, "InvalidRegionId.NotFound"),
        "{msg}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_by_name() {
    let s = serve_with(Arc::new(NullNode)).await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("RegionId", "local"), ("InstanceType", "ecs.c5.large")],
            "InvalidParameter",
            "InstanceType",
        ),
        (
            vec![("RegionId", "local"), ("Cpu", "100")],
            "InvalidParameter",
            "Cpu and Memory",
        ),
        (
            vec![
                ("RegionId", "local"),
                ("SpotStrategy", "SpotWithPriceLimit"),
            ],
            "MissingParameter",
            "SpotPriceLimit",
        ),
        (
            vec![("RegionId", "local"), ("SpotPriceLimit", "0.0001")],
            "InvalidParameter",
            "SpotPriceLimit",
        ),
    ];
    for (params, want, name) in cases {
        let (st, code, msg) = api_err(
            s.client
                .call("DescribeContainerGroupPrice", &p(&params))
                .await
                .unwrap_err(),
        );
        assert_eq!((st, code.as_str()), (400, want), "{msg}");
        assert!(msg.contains(name) && msg.contains(':'), "{msg}");
    }
}
