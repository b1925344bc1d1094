//! The build status key: stable per project and integration, within Bitbucket's limit.

use sha2::{Digest, Sha256};

/// Bitbucket's limit on a build status key.
pub const MAX_KEY: usize = 40;

/// The build status key: the same for every event of one project through one integration
/// (so a later status replaces the earlier one), within Bitbucket's 40 characters.
pub fn status_key(integration: &str, project_id: &str) -> String {
    let readable = format!("{integration}-{project_id}");
    let clean = readable
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if clean && readable.len() <= MAX_KEY {
        return readable;
    }
    let mut hash = Sha256::new();
    hash.update(integration.as_bytes());
    hash.update([0]);
    hash.update(project_id.as_bytes());
    let digest = hex::encode(hash.finalize());
    format!("rn-{}", &digest[..MAX_KEY - 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_when_short_and_hashed_when_long() {
        assert_eq!(status_key("bitbucket", "Xm2k9"), "bitbucket-Xm2k9");
        let long = status_key("bitbucket-status-for-the-platform-team", "Xm2k9");
        assert_eq!(long.len(), MAX_KEY);
        assert!(long.starts_with("rn-"));
        assert_eq!(
            long,
            status_key("bitbucket-status-for-the-platform-team", "Xm2k9")
        );
        assert_ne!(
            long,
            status_key("bitbucket-status-for-the-platform-team", "other")
        );
        assert_eq!(
            status_key("b", "a b").len(),
            MAX_KEY,
            "spaces are hashed away"
        );
    }
}
