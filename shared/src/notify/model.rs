//! The notification model: what a function has to say, independent of any channel.

use std::collections::BTreeMap;
use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }

    pub(crate) fn colour(self) -> &'static str {
        match self {
            Severity::Info => "#2eb886",
            Severity::Warning => "#daa038",
            Severity::Critical => "#d00000",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link for the reader to act on (an AWS console page, a CI run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// What a function has to tell people. Build it with [`Notification::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub severity: Severity,
    /// One line; cut and cleaned for each channel's limits.
    pub subject: String,
    /// The plain-text body, the one every channel can show.
    pub text: String,
    /// The function that speaks (`deploy-notifier`, ...); an SNS attribute for filter policies.
    pub source: String,
    /// What it is about (a service, a budget, a secret's name); an SNS attribute too.
    pub resource: Option<String>,
    pub links: Vec<Link>,
    /// More SNS message attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Notification {
    pub fn new(
        source: &str,
        severity: Severity,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            subject: subject.into(),
            text: text.into(),
            source: source.to_string(),
            resource: None,
            links: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_link(mut self, label: impl Into<String>, url: impl Into<String>) -> Self {
        self.links.push(Link {
            label: label.into(),
            url: url.into(),
        });
        self
    }

    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}
