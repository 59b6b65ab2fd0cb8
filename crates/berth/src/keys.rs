//! New access keys: an id in the `LTAI…` form of Alibaba Cloud and a random secret.

use berth_store::AccessKey;
use rand::Rng;

/// A fresh key of `account` (not yet stored).
pub(crate) fn new_access_key(account: &str) -> AccessKey {
    AccessKey {
        account: account.into(),
        access_key_id: format!("LTAI{}", random_alnum(20)),
        secret: random_alnum(30),
    }
}

fn random_alnum(n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| A[rng.gen_range(0..A.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_and_have_the_usual_shape() {
        let a = super::new_access_key("x");
        let b = super::new_access_key("x");
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret, b.secret);
        assert!(a.access_key_id.starts_with("LTAI") && a.access_key_id.len() == 24);
        assert_eq!(a.secret.len(), 30);
        assert!(a.secret.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
