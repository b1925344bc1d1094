//! What is wrong with an integration's config, gathered while the integration is built, so that
//! a start reports every problem at once rather than the first.

/// Everything wrong with one integration's config, as sentences naming the key (never quoting
/// a secret). Built up by [`Kind::build`](super::Kind::build).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Notes every problem of `problems`.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = String>) {
        self.0.extend(problems);
    }

    /// The value of `result`, or `None` once its problem is noted.
    pub fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|problem| self.push(problem)).ok()
    }

    /// The value of `result`, or `None` once its problems are noted.
    pub fn take_all<T>(&mut self, result: Result<T, Problems>) -> Option<T> {
        result.map_err(|problems| self.extend(problems.0)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `built` when nothing was noted, else every problem. Callers pass `None` only after
    /// noting why, so a build never fails without saying why.
    pub fn or_built<T>(self, built: Option<T>) -> Result<T, Problems> {
        match built {
            Some(built) if self.is_empty() => Ok(built),
            _ => {
                debug_assert!(!self.is_empty(), "a build failed without a problem");
                Err(self)
            }
        }
    }

    /// The problems, as sentences.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl From<Vec<String>> for Problems {
    fn from(problems: Vec<String>) -> Self {
        Self(problems)
    }
}

impl From<String> for Problems {
    fn from(problem: String) -> Self {
        Self(vec![problem])
    }
}
