//! Where the targets come from: EC2 instances by tag (the example deployment's service discovery), the
//! registered targets of ALB target groups, and static targets from configuration. Nothing in an
//! event can add one.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use aws_sdk_ec2::types::Filter;
use watchkeeper_shared::error::AwsError;

use crate::target::Target;

/// The port discovery goes through.
pub trait Discover: Send + Sync {
    fn discover(&self) -> impl Future<Output = Result<Vec<Target>, AwsError>> + Send;
}

/// Running EC2 instances tagged `Project=<project>` and `Role=<role>`, probed on their private IP.
#[derive(Debug, Clone)]
pub struct Ec2Discovery {
    client: aws_sdk_ec2::Client,
    project: String,
    role: String,
    port: u16,
    page_size: i32,
}

impl Ec2Discovery {
    pub fn new(client: aws_sdk_ec2::Client, project: String, role: String, port: u16) -> Self {
        Self {
            client,
            project,
            role,
            port,
            page_size: 100,
        }
    }

    /// Instances per `DescribeInstances` page (5 to 1000).
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.clamp(5, 1000);
        self
    }
}

impl Discover for Ec2Discovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let mut pages = self
            .client
            .describe_instances()
            .filters(filter("tag:Project", &self.project))
            .filters(filter("tag:Role", &self.role))
            .filters(filter("instance-state-name", "running"))
            .max_results(self.page_size)
            .into_paginator()
            .send();
        let mut targets = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", &e))?;
            targets.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(|i| instance_target(i, self.port)),
            );
        }
        Ok(targets)
    }
}

/// An instance as a target: its id, its `Name` tag (or id), its private IP on `port`. `None` for
/// an instance without a private address.
fn instance_target(instance: &aws_sdk_ec2::types::Instance, port: u16) -> Option<Target> {
    let id = instance.instance_id()?;
    let ip = instance.private_ip_address()?.parse::<IpAddr>().ok()?;
    let name = instance
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .unwrap_or(id);
    Some(Target {
        addr: SocketAddr::new(ip, port),
        name: name.to_string(),
        instance: Some(id.to_string()),
    })
}

/// The registered targets of ALB/NLB target groups: IP targets as they are, instance targets at
/// their private IP. Each target is probed on its registered port.
#[derive(Debug, Clone)]
pub struct TargetGroupDiscovery {
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ec2: aws_sdk_ec2::Client,
    target_group_arns: Vec<String>,
    default_port: u16,
}

impl TargetGroupDiscovery {
    pub fn new(
        elb: aws_sdk_elasticloadbalancingv2::Client,
        ec2: aws_sdk_ec2::Client,
        target_group_arns: Vec<String>,
        default_port: u16,
    ) -> Self {
        Self {
            elb,
            ec2,
            target_group_arns,
            default_port,
        }
    }
}

impl Discover for TargetGroupDiscovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        let mut targets = Vec::new();
        let mut instances: Vec<(String, u16)> = Vec::new();
        // All groups at once: a target group holds at most 1,000 targets, so a large deployment
        // has many, and one round trip each in sequence would eat the sweep's budget.
        let mut requests = tokio::task::JoinSet::new();
        for (index, arn) in self.target_group_arns.iter().enumerate() {
            let request = self.elb.describe_target_health().target_group_arn(arn);
            requests.spawn(async move { (index, request.send().await) });
        }
        let mut answers = Vec::with_capacity(self.target_group_arns.len());
        while let Some(joined) = requests.join_next().await {
            let Ok((index, answer)) = joined else {
                return Err(AwsError {
                    operation: "elasticloadbalancing:DescribeTargetHealth",
                    code: "TaskFailed".into(),
                    message: "the request task did not complete".into(),
                    status: None,
                    retryable: true,
                });
            };
            let health = answer
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeTargetHealth", &e))?;
            answers.push((index, health));
        }
        // In configuration order, so the first group to name an address gives its name.
        answers.sort_by_key(|(index, _)| *index);
        for (_, health) in &answers {
            for description in health.target_health_descriptions() {
                let draining = description
                    .target_health()
                    .and_then(|h| h.state())
                    .is_some_and(|s| s.as_str() == "draining");
                let Some(target) = description.target() else {
                    continue;
                };
                if draining {
                    continue;
                }
                let port = target
                    .port()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(self.default_port);
                let Some(id) = target.id() else { continue };
                if id.starts_with("i-") {
                    instances.push((id.to_string(), port));
                } else if let Ok(ip) = id.parse::<IpAddr>() {
                    let addr = SocketAddr::new(ip, port);
                    targets.push(Target {
                        addr,
                        name: addr.to_string(),
                        instance: None,
                    });
                }
                // Lambda targets (an ARN) are not HTTP backends to probe.
            }
        }
        if !instances.is_empty() {
            let ids: Vec<String> = instances.iter().map(|(id, _)| id.clone()).collect();
            let mut pages = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", &e))?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = instance.instance_id() else {
                        continue;
                    };
                    // An instance may be registered on several ports.
                    for (_, port) in instances.iter().filter(|(i, _)| i == id) {
                        targets.extend(instance_target(instance, *port));
                    }
                }
            }
        }
        Ok(targets)
    }
}

/// The discovery sources configuration turned on (none: static targets only).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub ec2: Option<Ec2Discovery>,
    pub target_groups: Option<TargetGroupDiscovery>,
}

impl Discover for Discovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        let mut targets = match &self.ec2 {
            Some(d) => d.discover().await?,
            None => Vec::new(),
        };
        if let Some(d) = &self.target_groups {
            targets.extend(d.discover().await?);
        }
        Ok(targets)
    }
}
