//! The trial table's query string: `page`, `per_page`, `sort`, `order`, `status`. Anything
//! malformed is a 400 page that says what was expected.

use std::collections::BTreeMap;

use decsweep_coordinator::{SortKey, StudyColumns, TrialQuery};

use crate::error::PageError;

/// Rows per page unless `per_page` says otherwise, and the most it may say.
pub(crate) const PER_PAGE: u64 = 50;
pub(crate) const MAX_PER_PAGE: u64 = 500;

/// Every status a trial can have, `cancelled` included.
pub(crate) const STATUSES: [&str; 6] = ["pending", "running", "completed", "failed", "pruned", "cancelled"];

/// The table's state as the page's links carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableParams {
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    /// As written in the query: `id`, `seed`, `metric:accuracy`, ...
    pub sort: String,
    pub descending: bool,
    pub status: Option<String>,
}

impl Default for TableParams {
    fn default() -> Self {
        TableParams { page: 1, per_page: PER_PAGE, sort: "id".into(), descending: false, status: None }
    }
}

fn whole(name: &str, text: &str, min: u64, max: u64) -> Result<u64, PageError> {
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(PageError::bad_request(format!("`{name}` must be a whole number from {min} to {max}; got `{text}`"))),
    }
}

impl TableParams {
    /// Reads the query against the study's columns.
    pub(crate) fn parse(q: &BTreeMap<String, String>, columns: &StudyColumns) -> Result<TableParams, PageError> {
        let mut p = TableParams::default();
        if let Some(v) = q.get("page") {
            p.page = whole("page", v, 1, u64::from(u32::MAX))?;
        }
        if let Some(v) = q.get("per_page") {
            p.per_page = whole("per_page", v, 1, MAX_PER_PAGE)?;
        }
        if let Some(v) = q.get("order") {
            p.descending = match v.as_str() {
                "asc" => false,
                "desc" => true,
                other => return Err(PageError::bad_request(format!("`order` must be `asc` or `desc`; got `{other}`"))),
            };
        }
        if let Some(v) = q.get("status").filter(|v| !v.is_empty()) {
            if !STATUSES.contains(&v.as_str()) {
                return Err(PageError::bad_request(format!(
                    "`status` must be one of {} (or empty for all); got `{v}`",
                    STATUSES.join(", ")
                )));
            }
            p.status = Some(v.clone());
        }
        if let Some(v) = q.get("sort") {
            sort_key(v, columns)?;
            p.sort = v.clone();
        }
        Ok(p)
    }

    pub(crate) fn query(&self, columns: &StudyColumns) -> Result<TrialQuery, PageError> {
        Ok(TrialQuery {
            status: self.status.clone(),
            sort: sort_key(&self.sort, columns)?,
            descending: self.descending,
            offset: (self.page - 1).saturating_mul(self.per_page),
            limit: self.per_page,
        })
    }

    /// This table's link with some fields changed.
    pub(crate) fn href(&self, study: &str, change: impl FnOnce(&mut TableParams)) -> String {
        let mut p = self.clone();
        change(&mut p);
        let mut parts = Vec::new();
        if p.page != 1 {
            parts.push(format!("page={}", p.page));
        }
        if p.per_page != PER_PAGE {
            parts.push(format!("per_page={}", p.per_page));
        }
        if p.sort != "id" {
            parts.push(format!("sort={}", encode(&p.sort)));
        }
        if p.descending {
            parts.push("order=desc".into());
        }
        if let Some(s) = &p.status {
            parts.push(format!("status={}", encode(s)));
        }
        let base = format!("/studies/{}", encode(study));
        if parts.is_empty() {
            base
        } else {
            format!("{base}?{}", parts.join("&"))
        }
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `id`, `label`, `seed`, `status`, `attempts`, `worker`, `param:NAME` or `metric:NAME` of the
/// study's columns.
pub(crate) fn sort_key(text: &str, columns: &StudyColumns) -> Result<SortKey, PageError> {
    let key = match text {
        "id" => Some(SortKey::Id),
        "label" => Some(SortKey::Label),
        "seed" => Some(SortKey::Seed),
        "status" => Some(SortKey::Status),
        "attempts" => Some(SortKey::Attempts),
        "worker" => Some(SortKey::Worker),
        _ => match text.split_once(':') {
            Some(("param", name)) if columns.params.iter().any(|p| p.name == name) => {
                Some(SortKey::Param(name.to_string()))
            }
            Some(("metric", name)) if columns.metrics.iter().any(|m| m == name) => {
                Some(SortKey::Metric(name.to_string()))
            }
            _ => None,
        },
    };
    key.ok_or_else(|| {
        let params: Vec<String> = columns.params.iter().map(|p| format!("param:{}", p.name)).collect();
        let metrics: Vec<String> = columns.metrics.iter().map(|m| format!("metric:{m}")).collect();
        let mut expected = vec!["id", "label", "seed", "status", "attempts", "worker"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        expected.extend(params);
        expected.extend(metrics);
        PageError::bad_request(format!("`sort` must be one of {}; got `{text}`", expected.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use decsweep_coordinator::SweptParam;

    use super::*;

    fn columns() -> StudyColumns {
        StudyColumns {
            params: vec![SweptParam { name: "lr".into(), log: true }],
            metrics: vec!["accuracy".into()],
            sampler: "grid".into(),
        }
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<TableParams, PageError> {
        let q = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TableParams::parse(&q, &columns())
    }

    #[test]
    fn good_queries_parse_and_round_trip_through_links() {
        let p =
            parse(&[("page", "3"), ("sort", "metric:accuracy"), ("order", "desc"), ("status", "completed")]).unwrap();
        assert_eq!(p.query(&columns()).unwrap().offset, 100);
        assert_eq!(p.href("a b", |_| {}), "/studies/a%20b?page=3&sort=metric:accuracy&order=desc&status=completed");
        assert_eq!(parse(&[("status", "")]).unwrap().status, None);
        assert_eq!(parse(&[("sort", "param:lr")]).unwrap().sort, "param:lr");
    }

    #[test]
    fn malformed_queries_say_what_was_expected() {
        let msg = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().message;
        assert!(msg(&[("page", "-1")]).contains("`page` must be a whole number from 1"), "{}", msg(&[("page", "-1")]));
        assert!(msg(&[("page", "0")]).contains("got `0`"));
        assert!(msg(&[("per_page", "100000")]).contains("to 500"));
        let sort = msg(&[("sort", "nonsense")]);
        assert!(sort.contains("metric:accuracy") && sort.contains("param:lr") && sort.contains("`nonsense`"), "{sort}");
        assert!(msg(&[("sort", "metric:nope")]).contains("got `metric:nope`"));
        assert!(msg(&[("status", "done")]).contains("cancelled"));
        assert!(msg(&[("order", "up")]).contains("`asc` or `desc`"));
        assert_eq!(parse(&[("page", "x")]).unwrap_err().status, axum::http::StatusCode::BAD_REQUEST);
    }
}
