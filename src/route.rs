//! Which integrations an event reaches: the per-integration routing filters.

use globset::GlobMatcher;
use serde::{Deserialize, Deserializer, de};

use crate::echo;
use crate::event::{EventType, Reason, RunEvent};

/// Routing filters of one integration; an empty list lets everything through.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    /// The event types the integration gets; left out, its kind's default (every type for
    /// statuses, comments, notes and the Slack app; the ends of a run for chat webhooks and
    /// signed webhooks).
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    /// Project ids the integration is for.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Branch globs (`main`, `release/*`); a run without a branch never matches a non-empty list.
    #[serde(default)]
    pub branches: Vec<BranchGlob>,
    /// The run must carry at least one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Cancellation reasons the integration is for; other events than cancels pass.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// Notify only when the last known results have a failed test (unknown results, as in
    /// `run.started`, have none).
    #[serde(default)]
    pub only_failed: bool,
}

impl Filters {
    /// The event types the integration gets: `events`, or `default` (its kind's).
    pub fn events<'a>(&'a self, default: &'a [EventType]) -> &'a [EventType] {
        self.events.as_deref().unwrap_or(default)
    }

    /// `Ok` when the event passes every filter, otherwise the first filter it fails, as a
    /// sentence; `default_events` are the types the integration gets without `events`.
    pub fn admit(&self, event: &RunEvent, default_events: &[EventType]) -> Result<(), String> {
        let event_type = event.event_type();
        if !self.events(default_events).contains(&event_type) {
            return Err(match &self.events {
                Some(_) => format!("`{event_type}` is not in `events`"),
                None => format!(
                    "`{event_type}` is not among the kind's default events (add `events` to get it)"
                ),
            });
        }
        let run = &event.data;
        if !self.projects.is_empty() && !self.projects.contains(&run.project_id) {
            return Err(format!(
                "project `{}` is not in `projects`",
                echo::value(&run.project_id)
            ));
        }
        if !self.branches.is_empty() {
            let Some(branch) = run.commit.branch.as_deref() else {
                return Err("the run has no branch and `branches` is set".into());
            };
            if !self
                .branches
                .iter()
                .any(|glob| glob.matcher.is_match(branch))
            {
                return Err(format!(
                    "branch `{}` matches none of `branches`",
                    echo::value(branch)
                ));
            }
        }
        if !self.tags.is_empty() && !run.tags.iter().any(|tag| self.tags.contains(tag)) {
            return Err("the run has none of `tags`".into());
        }
        if let Some(cancellation) = event.cancellation()
            && !self.reasons.is_empty()
            && !self.reasons.contains(&cancellation.reason)
        {
            return Err(format!(
                "reason `{}` is not in `reasons`",
                cancellation.reason.as_str()
            ));
        }
        if self.only_failed && run.results.as_ref().is_none_or(|r| r.failures == 0) {
            return Err("`only_failed` is set and the run has no failed test".into());
        }
        Ok(())
    }
}

/// A branch glob, compiled when the config loads.
#[derive(Debug, Clone)]
pub struct BranchGlob {
    matcher: GlobMatcher,
}

impl<'de> Deserialize<'de> for BranchGlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // `*` must not cross `/`, so that `release/*` does not match `release/1/hotfix`.
        let glob = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .build()
            .map_err(|err| de::Error::custom(format!("`{text}` is not a branch glob: {err}")))?;
        Ok(Self {
            matcher: glob.compile_matcher(),
        })
    }
}

impl BranchGlob {
    #[cfg(test)]
    fn new(text: &str) -> Self {
        Self {
            matcher: globset::Glob::new(text).unwrap().compile_matcher(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunEvent {
        RunEvent::parse(include_bytes!("../config/example-event.json")).unwrap()
    }

    #[test]
    fn empty_filters_admit_everything() {
        assert_eq!(Filters::default().admit(&run(), &EventType::ALL), Ok(()));
    }

    #[test]
    fn projects_filter_by_id() {
        let mut filters = Filters {
            projects: vec!["Xm2k9".into()],
            ..Filters::default()
        };
        assert_eq!(filters.admit(&run(), &EventType::ALL), Ok(()));
        filters.projects = vec!["other".into()];
        assert!(
            filters
                .admit(&run(), &EventType::ALL)
                .unwrap_err()
                .contains("`Xm2k9`")
        );
    }

    #[test]
    fn branches_are_globs() {
        let filters = |globs: &[&str]| Filters {
            branches: globs.iter().map(|g| BranchGlob::new(g)).collect(),
            ..Filters::default()
        };
        assert_eq!(
            filters(&["feature-*"]).admit(&run(), &EventType::ALL),
            Ok(())
        );
        assert_eq!(
            filters(&["main", "feature-?"]).admit(&run(), &EventType::ALL),
            Ok(())
        );
        assert!(filters(&["main"]).admit(&run(), &EventType::ALL).is_err());
        let mut no_branch = run();
        no_branch.data.commit.branch = None;
        assert!(
            filters(&["*"])
                .admit(&no_branch, &EventType::ALL)
                .unwrap_err()
                .contains("no branch")
        );
    }

    #[test]
    fn a_reason_quotes_the_run_bounded_and_escaped() {
        let filters = Filters {
            projects: vec!["web".into()],
            branches: vec![BranchGlob::new("main")],
            ..Filters::default()
        };
        let mut hostile = run();
        hostile.data.project_id = format!("\u{1b}[2J{}", "p".repeat(10_000));
        let reason = filters.admit(&hostile, &EventType::ALL).unwrap_err();
        assert!(reason.starts_with("project `\\u{1b}[2Jppp"), "{reason}");
        assert!(
            reason.ends_with("… (10004 bytes)` is not in `projects`"),
            "{reason}"
        );
        hostile.data.project_id = "web".into();
        hostile.data.commit.branch = Some(format!("{}\r", "b".repeat(10_000)));
        let reason = filters.admit(&hostile, &EventType::ALL).unwrap_err();
        assert!(reason.len() < 400, "{reason}");
    }

    #[test]
    fn configured_globs_do_not_cross_slashes() {
        let glob: BranchGlob = serde_json::from_str("\"release/*\"").unwrap();
        assert!(glob.matcher.is_match("release/1.2"));
        assert!(!glob.matcher.is_match("release/1.2/hotfix"));
        assert!(serde_json::from_str::<BranchGlob>("\"[\"").is_err());
    }

    #[test]
    fn tags_need_one_in_common() {
        let mut filters = Filters {
            tags: vec!["nightly".into(), "smoke".into()],
            ..Filters::default()
        };
        assert_eq!(filters.admit(&run(), &EventType::ALL), Ok(()));
        filters.tags = vec!["smoke".into()];
        assert!(filters.admit(&run(), &EventType::ALL).is_err());
    }

    #[test]
    fn reasons_filter_by_cancellation_reason() {
        let mut filters = Filters {
            reasons: vec![Reason::FailFast],
            ..Filters::default()
        };
        assert!(
            filters
                .admit(&run(), &EventType::ALL)
                .unwrap_err()
                .contains("`user`")
        );
        filters.reasons.push(Reason::User);
        assert_eq!(filters.admit(&run(), &EventType::ALL), Ok(()));
    }

    #[test]
    fn only_failed_needs_a_failure() {
        let filters = Filters {
            only_failed: true,
            ..Filters::default()
        };
        assert_eq!(filters.admit(&run(), &EventType::ALL), Ok(()));
        let mut passed = run();
        passed.data.results.as_mut().unwrap().failures = 0;
        assert!(filters.admit(&passed, &EventType::ALL).is_err());
    }

    #[test]
    fn events_choose_the_types_and_default_to_the_kinds() {
        let cancel = run();
        let ends = [EventType::Finished, EventType::Canceled];
        assert_eq!(Filters::default().admit(&cancel, &ends), Ok(()));
        assert_eq!(
            Filters::default().admit(&cancel, &[EventType::Started]),
            Err(
                "`run.canceled` is not among the kind's default events (add `events` to get it)"
                    .into()
            )
        );
        let only_started: Filters = serde_json::from_str(r#"{"events": ["run.started"]}"#).unwrap();
        assert_eq!(
            only_started.admit(&cancel, &EventType::ALL),
            Err("`run.canceled` is not in `events`".into())
        );
        let error = serde_json::from_str::<Filters>(r#"{"events": ["run.ended"]}"#).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "unknown event type `run.ended`, expected one of `run.started`, `run.finished`, `run.timed_out`, `run.canceled`"
            ),
            "{error}"
        );
    }
}
