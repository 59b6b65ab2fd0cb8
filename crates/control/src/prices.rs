//! The operator's price catalog: `berth serve --prices FILE`, else `STATE_DIR/prices.toml` when
//! it exists, else berth's built-in defaults (ECI's published pay-as-you-go prices). Read once
//! at start; a file that cannot be used stops the start with a message naming it.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_core::price::{PriceCatalog, PriceError, PriceFile};

/// Name of the catalog in the state directory.
pub const PRICES_FILE: &str = "prices.toml";
/// Largest price file read (a catalog of every region is a few KiB).
pub const MAX_PRICES_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PricesFileError {
    #[error("cannot read the price file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the price file {path} is larger than {MAX_PRICES_FILE} bytes")]
    TooLarge { path: PathBuf },
    #[error("the price file {path} is not a valid catalog: {why}")]
    Syntax { path: PathBuf, why: String },
    #[error("the price file {path}: {source}")]
    Prices { path: PathBuf, source: PriceError },
}

/// The catalog of a file's text.
pub fn parse_prices(text: &str) -> Result<PriceCatalog, (String, Option<PriceError>)> {
    let file: PriceFile = toml::from_str(text).map_err(|e| (e.to_string(), None))?;
    PriceCatalog::from_file(&file).map_err(|e| (e.to_string(), Some(e)))
}

/// Reads the catalog berth serves with: `explicit` (which must exist), else
/// `state_dir/prices.toml` if there is one, else the built-in defaults. Also answers the
/// file it read, if any.
pub fn load_prices(
    explicit: Option<&Path>,
    state_dir: &Path,
) -> Result<(PriceCatalog, Option<PathBuf>), PricesFileError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = state_dir.join(PRICES_FILE);
            if !p.exists() {
                return Ok((PriceCatalog::default(), None));
            }
            p
        }
    };
    read_prices(&path).map(|c| (c, Some(path)))
}

/// Reads and checks the catalog of one file.
pub fn read_prices(path: &Path) -> Result<PriceCatalog, PricesFileError> {
    let read = |source| PricesFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_PRICES_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    let path = path.to_path_buf();
    if text.len() as u64 > MAX_PRICES_FILE {
        return Err(PricesFileError::TooLarge { path });
    }
    match parse_prices(&text) {
        Ok(c) => Ok(c),
        Err((_, Some(source))) => Err(PricesFileError::Prices { path, source }),
        Err((why, None)) => Err(PricesFileError::Syntax { path, why }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::price::Decimal;

    #[test]
    fn a_file_of_regions_and_currencies() {
        let c = parse_prices(
            r#"
[default]
currency = "USD"
vcpu_second = "0.0000077"
memory_gib_second = "0.00000096"
spot_ratio = "0.2"

[region.cn-hangzhou]
currency = "CNY"
vcpu_second = "0.000049"
memory_gib_second = 0
"#,
        )
        .unwrap();
        let hz = c.for_region("cn-hangzhou", "local").unwrap();
        assert_eq!(hz.currency, "CNY");
        assert_eq!(hz.vcpu_second.to_string(), "0.000049");
        assert_eq!(hz.memory_gib_second, Decimal::ZERO);
        assert_eq!(hz.spot_ratio.to_string(), "0.2");
        let local = c.for_region("local", "local").unwrap();
        assert_eq!(local.currency, "USD");
        assert_eq!(local.memory_gib_second.to_string(), "0.00000096");
    }

    #[test]
    fn floats_unknown_keys_and_bad_values_are_refused() {
        let e = parse_prices("[default]\nvcpu_second = 0.000049\n").unwrap_err();
        assert!(e.0.contains("as a string"), "{}", e.0);
        let e = parse_prices("[default]\nvcpu_secnd = \"1\"\n").unwrap_err();
        assert!(e.0.contains("vcpu_secnd"), "{}", e.0);
        let e = parse_prices("[default]\nvcpu_second = \"abc\"\n").unwrap_err();
        assert!(e.0.contains("not an exact decimal"), "{}", e.0);
        let e = parse_prices("[region.x]\ncurrency = \"cny\"\n").unwrap_err();
        assert!(e.1.is_some() && e.0.contains("[region.x]"), "{}", e.0);
        assert!(parse_prices("").is_ok());
    }

    #[test]
    fn loading_prefers_the_flag_then_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (c, from) = load_prices(None, dir.path()).unwrap();
        assert_eq!(c, PriceCatalog::default());
        assert!(from.is_none());
        std::fs::write(
            dir.path().join(PRICES_FILE),
            "[default]\ncurrency = \"USD\"\n",
        )
        .unwrap();
        let (c, from) = load_prices(None, dir.path()).unwrap();
        assert_eq!(c.default_prices().currency, "USD");
        assert_eq!(from.unwrap(), dir.path().join(PRICES_FILE));
        let missing = dir.path().join("nope.toml");
        let e = load_prices(Some(&missing), dir.path()).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_PRICES_FILE as usize + 10]).unwrap();
        assert!(matches!(
            load_prices(Some(&big), dir.path()),
            Err(PricesFileError::TooLarge { .. })
        ));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[default]\nspot_ratio = \"2\"\n").unwrap();
        let e = load_prices(Some(&bad), dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("bad.toml") && e.to_string().contains("spot_ratio"),
            "{e}"
        );
    }
}
