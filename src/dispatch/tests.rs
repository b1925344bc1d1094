//! The dispatcher against a real SQLite ledger and a webhook integration on a wiremock
//! receiver: what it plans, and what each delivery ends as.
