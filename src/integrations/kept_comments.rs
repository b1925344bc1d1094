//! A run's comments (GitHub) or notes (GitLab) as the ledger keeps them: the id of the one on
//! each pull or merge request, so that a later event edits it directly instead of reading the
//! request's comments to find it by its marker.

use std::collections::BTreeMap;

/// The run's comment id on each pull (or merge) request it commented. The ledger keeps each as
/// `<number>:<id>`, several joined by a space (as a plan's kept pieces are joined).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptComments(BTreeMap<u64, u64>);

impl KeptComments {
    /// What the ledger kept. A piece of another shape (the object of another kind, after an
    /// integration's `type` changed under the same name) is no comment: it is found again.
    pub fn parse(kept: Option<&str>) -> Self {
        let pieces = kept.unwrap_or_default().split_whitespace();
        Self(
            pieces
                .filter_map(|piece| {
                    let (number, id) = piece.split_once(':')?;
                    Some((number.parse().ok()?, id.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The id of the run's comment on request `number`, if one is kept.
    pub fn on(&self, number: u64) -> Option<u64> {
        self.0.get(&number).copied()
    }
}

/// The piece a step keeps for comment `id` on request `number`.
pub fn piece(number: u64, id: u64) -> String {
    format!("{number}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pieces_of_several_steps_read_back_per_request() {
        let kept = [piece(42, 1001), piece(43, 1002)].join(" ");
        let comments = KeptComments::parse(Some(&kept));
        assert_eq!(
            (comments.on(42), comments.on(43), comments.on(44)),
            (Some(1001), Some(1002), None)
        );
    }

    #[test]
    fn nothing_kept_or_another_kinds_object_is_no_comment() {
        for kept in [
            None,
            Some(""),
            Some("C0123ABCD 1800000000.000001"),
            Some("1000"),
        ] {
            assert_eq!(
                KeptComments::parse(kept),
                KeptComments::default(),
                "{kept:?}"
            );
        }
        let mixed = KeptComments::parse(Some("42:x 43:7 :9"));
        assert_eq!((mixed.on(42), mixed.on(43)), (None, Some(7)));
    }
}
