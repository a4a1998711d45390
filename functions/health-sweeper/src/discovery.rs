//! Where the targets come from: EC2 instances by tag (the seed's service discovery), plus static
//! targets from configuration. Nothing in an event can add one.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use aws_sdk_ec2::types::Filter;
use watchkeeper_shared::error::AwsError;

use crate::health::Target;

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
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let (Some(id), Some(ip)) = (instance.instance_id(), instance.private_ip_address())
                else {
                    continue;
                };
                let Ok(ip) = ip.parse::<IpAddr>() else {
                    continue;
                };
                let name = instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .unwrap_or(id)
                    .to_string();
                targets.push(Target {
                    id: id.to_string(),
                    name,
                    addr: SocketAddr::new(ip, self.port),
                });
            }
        }
        Ok(targets)
    }
}

/// No discovery: static targets only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDiscovery;

impl Discover for NoDiscovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        Ok(Vec::new())
    }
}

/// Either kind, chosen by configuration at init.
#[derive(Debug, Clone)]
pub enum Discovery {
    Ec2(Ec2Discovery),
    None(NoDiscovery),
}

impl Discover for Discovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        match self {
            Discovery::Ec2(d) => d.discover().await,
            Discovery::None(d) => d.discover().await,
        }
    }
}
