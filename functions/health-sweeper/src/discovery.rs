//! Where the targets come from: EC2 instances by tag (the example deployment's service discovery), the
//! registered targets of ALB target groups, and static targets from configuration. Nothing in an
//! event can add one.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use aws_sdk_ec2::types::Filter;
use watchkeeper_shared::error::AwsError;

use crate::target::{Check, Target};

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
            // DescribeInstances' largest page: 10,000 instances are 10 round trips, not 100.
            page_size: 1000,
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
        check: Default::default(),
    })
}

/// The registered targets of ALB/NLB target groups: IP targets as they are, instance targets at
/// their private IP. Each target is asked as its group's health check asks: on the check's port
/// (the registered port for `traffic-port`), over TLS when the check's protocol is HTTPS (or, for
/// a TCP check, the group's protocol is HTTPS or TLS), on the check's path when it has one.
#[derive(Debug, Clone)]
pub struct TargetGroupDiscovery {
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ec2: aws_sdk_ec2::Client,
    target_group_arns: Vec<String>,
    default_port: u16,
    group_paths: bool,
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
            group_paths: false,
        }
    }

    /// `SWEEP_TARGET_GROUP_CHECK=group`: ask each group's targets on its health check's own path
    /// and port too (by default only its protocol is taken: `SWEEP_PATH` on the registered port,
    /// the deeper check the sweeper exists for).
    pub fn with_group_paths(mut self, group_paths: bool) -> Self {
        self.group_paths = group_paths;
        self
    }
}

/// Whether a target group's word on a target means it is not to be probed: `initial`
/// (registering, or its first health checks running: the app may still be booting), `draining`
/// (being deregistered: a scale-in or a deploy), or `unused` because the instance is stopped
/// (`Target.InvalidState`). Such a target is neither up nor down, and the EC2 tag discovery
/// leaves it out too. Other `unused` reasons (a group no load balancer uses, an Availability Zone
/// not enabled) say nothing about the target: it is probed, so a registration in such a group
/// cannot hide a tagged instance.
fn left_out(state: &str, reason: &str) -> bool {
    match state {
        "initial" | "draining" => true,
        "unused" => reason == "Target.InvalidState",
        _ => false,
    }
}

/// How a target group's health check asks its targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupCheck {
    check: Check,
    /// The check's own port; `None`: each target's registered port (`traffic-port`).
    port: Option<u16>,
}

impl GroupCheck {
    /// The group's protocol; its health check's path and port too with `group_paths`.
    fn of(group: &aws_sdk_elasticloadbalancingv2::types::TargetGroup, group_paths: bool) -> Self {
        use aws_sdk_elasticloadbalancingv2::types::ProtocolEnum;
        let http_check = matches!(
            group.health_check_protocol(),
            Some(ProtocolEnum::Http | ProtocolEnum::Https)
        );
        let tls = if http_check {
            group.health_check_protocol() == Some(&ProtocolEnum::Https)
        } else {
            // A TCP check only connects; the sweeper asks `SWEEP_PATH` in the group's protocol.
            matches!(
                group.protocol(),
                Some(ProtocolEnum::Https | ProtocolEnum::Tls)
            )
        };
        let path = group
            .health_check_path()
            .filter(|path| group_paths && http_check && crate::probe::is_request_path(path))
            .map(std::sync::Arc::from);
        let port = group
            .health_check_port()
            .filter(|_| group_paths)
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port != 0);
        Self {
            check: Check { tls, path },
            port,
        }
    }
}

/// Target groups per DescribeTargetGroups call.
const TARGET_GROUPS_PER_CALL: usize = 20;
/// Target groups asked at once, and instance-id chunks looked up at once.
const CONCURRENT_REQUESTS: usize = 8;
/// Instance ids per DescribeInstances call, by the `instance-id` filter: EC2 takes at most 200
/// filter values in one call (the state filter is one more), and an unknown id in a filter is no
/// error, where one in `InstanceIds` fails the whole call.
const INSTANCE_ID_CHUNK: usize = 150;

/// What the target groups list: the targets to probe, and the instances and addresses they leave
/// out (by state), which the EC2 tag discovery must not probe either.
#[derive(Debug, Default)]
pub struct TargetGroupTargets {
    pub targets: Vec<Target>,
    pub left_out: std::collections::HashSet<String>,
    pub left_out_addrs: std::collections::HashSet<IpAddr>,
}

impl TargetGroupDiscovery {
    /// The registered targets, and the instances left out for their state.
    pub async fn targets(&self) -> Result<TargetGroupTargets, AwsError> {
        let mut found = TargetGroupTargets::default();
        // Instance id -> the ports it is asked on, and how (in order, no repeated port).
        let mut instances: Vec<(String, Vec<(u16, Check)>)> = Vec::new();
        let mut index_of: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let (answers, checks) = tokio::join!(self.target_health(), self.group_checks());
        let answers = answers?;
        for (health, arn) in answers.iter().zip(&self.target_group_arns) {
            let group = checks.get(arn).cloned().unwrap_or_default();
            for description in health.target_health_descriptions() {
                let Some(target) = description.target() else {
                    continue;
                };
                let Some(id) = target.id() else { continue };
                let health = description.target_health();
                let state = health.and_then(|h| h.state()).map_or("", |s| s.as_str());
                let reason = health.and_then(|h| h.reason()).map_or("", |r| r.as_str());
                if left_out(state, reason) {
                    if id.starts_with("i-") {
                        found.left_out.insert(id.to_string());
                    } else if let Ok(ip) = id.parse::<IpAddr>() {
                        found.left_out_addrs.insert(ip);
                    }
                    continue;
                }
                let port = group.port.unwrap_or_else(|| {
                    target
                        .port()
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(self.default_port)
                });
                if id.starts_with("i-") {
                    let at = *index_of.entry(id.to_string()).or_insert_with(|| {
                        instances.push((id.to_string(), Vec::new()));
                        instances.len() - 1
                    });
                    if !instances[at].1.iter().any(|(p, _)| *p == port) {
                        instances[at].1.push((port, group.check.clone()));
                    }
                } else if let Ok(ip) = id.parse::<IpAddr>() {
                    let addr = SocketAddr::new(ip, port);
                    found.targets.push(Target {
                        addr,
                        name: addr.to_string(),
                        instance: None,
                        check: group.check.clone(),
                    });
                }
                // Lambda targets (an ARN) are not HTTP backends to probe.
            }
        }
        // An instance (or address) listed by one group and left out by another is probed.
        found.left_out.retain(|id| !index_of.contains_key(id));
        let listed: std::collections::HashSet<IpAddr> =
            found.targets.iter().map(|t| t.addr.ip()).collect();
        found.left_out_addrs.retain(|ip| !listed.contains(ip));
        if !instances.is_empty() {
            let running = self
                .running_instances(instances.iter().map(|(id, _)| id.clone()).collect())
                .await?;
            for (id, ports) in &instances {
                // A stopped or terminated instance is not probed (a target group says
                // `unused` for it too; a stale registration is no error).
                let Some(instance) = running.get(id) else {
                    continue;
                };
                for (port, check) in ports {
                    let mut target = instance.clone();
                    target.addr.set_port(*port);
                    target.check = check.clone();
                    found.targets.push(target);
                }
            }
        }
        Ok(found)
    }

    /// How each group's health check asks (by ARN), from DescribeTargetGroups, 20 groups a call.
    /// A failed call (throttled, denied) costs only that: its groups are asked the sweeper's own
    /// way, with a warning, and discovery goes on.
    async fn group_checks(&self) -> std::collections::HashMap<String, GroupCheck> {
        let mut checks = std::collections::HashMap::new();
        for arns in self.target_group_arns.chunks(TARGET_GROUPS_PER_CALL) {
            let answer = self
                .elb
                .describe_target_groups()
                .set_target_group_arns(Some(arns.to_vec()))
                .send()
                .await;
            match answer {
                Ok(answer) => {
                    for group in answer.target_groups() {
                        if let Some(arn) = group.target_group_arn() {
                            checks.insert(arn.to_string(), GroupCheck::of(group, self.group_paths));
                        }
                    }
                }
                Err(e) => {
                    let error = AwsError::from_sdk("elasticloadbalancing:DescribeTargetGroups", &e);
                    tracing::warn!(%error, groups = arns.len(), "target groups asked over plain HTTP on SWEEP_PATH: their health checks could not be read");
                }
            }
        }
        checks
    }

    /// DescribeTargetHealth of every group, at most [`CONCURRENT_REQUESTS`] at once, in
    /// configuration order (the first group to name an address gives its name).
    async fn target_health(
        &self,
    ) -> Result<Vec<aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput>, AwsError>{
        let mut answers = Vec::with_capacity(self.target_group_arns.len());
        let mut requests = tokio::task::JoinSet::new();
        let mut arns = self.target_group_arns.iter().enumerate();
        loop {
            while requests.len() < CONCURRENT_REQUESTS {
                let Some((index, arn)) = arns.next() else {
                    break;
                };
                let request = self.elb.describe_target_health().target_group_arn(arn);
                requests.spawn(async move { (index, request.send().await) });
            }
            let Some(joined) = requests.join_next().await else {
                break;
            };
            let (index, answer) =
                joined.map_err(|_| task_failed("elasticloadbalancing:DescribeTargetHealth"))?;
            let health = answer
                .map_err(|e| AwsError::from_sdk("elasticloadbalancing:DescribeTargetHealth", &e))?;
            answers.push((index, health));
        }
        answers.sort_by_key(|(index, _)| *index);
        Ok(answers.into_iter().map(|(_, health)| health).collect())
    }

    /// The running instances among `ids`, looked up in chunks by the `instance-id` filter, at
    /// most [`CONCURRENT_REQUESTS`] chunks at once.
    async fn running_instances(
        &self,
        ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, Target>, AwsError> {
        let mut running = std::collections::HashMap::with_capacity(ids.len());
        let mut chunks = ids
            .chunks(INSTANCE_ID_CHUNK)
            .map(<[String]>::to_vec)
            .collect::<Vec<_>>()
            .into_iter();
        let mut requests = tokio::task::JoinSet::new();
        loop {
            while requests.len() < CONCURRENT_REQUESTS {
                let Some(chunk) = chunks.next() else { break };
                let ec2 = self.ec2.clone();
                requests.spawn(async move {
                    let mut pages = ec2
                        .describe_instances()
                        .filters(
                            Filter::builder()
                                .name("instance-id")
                                .set_values(Some(chunk))
                                .build(),
                        )
                        .filters(
                            Filter::builder()
                                .name("instance-state-name")
                                .values("running")
                                .build(),
                        )
                        .max_results(1000)
                        .into_paginator()
                        .send();
                    let mut found = Vec::new();
                    while let Some(page) = pages.next().await {
                        let page =
                            page.map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", &e))?;
                        // Only what a target needs: the SDK's instance structs are large.
                        found.extend(
                            page.reservations()
                                .iter()
                                .flat_map(|r| r.instances())
                                .filter_map(|i| {
                                    Some((i.instance_id()?.to_string(), instance_target(i, 0)?))
                                }),
                        );
                    }
                    Ok::<_, AwsError>(found)
                });
            }
            let Some(joined) = requests.join_next().await else {
                break;
            };
            running.extend(joined.map_err(|_| task_failed("ec2:DescribeInstances"))??);
        }
        Ok(running)
    }
}

fn task_failed(operation: &'static str) -> AwsError {
    AwsError {
        operation,
        code: "TaskFailed".into(),
        message: "the request task did not complete".into(),
        status: None,
        retryable: true,
    }
}

impl Discover for TargetGroupDiscovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        Ok(self.targets().await?.targets)
    }
}

/// The discovery sources configuration turned on (none: static targets only).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub ec2: Option<Ec2Discovery>,
    pub target_groups: Option<TargetGroupDiscovery>,
}

impl Discovery {
    /// The sources the configuration turns on, with clients built once from `sdk`.
    pub fn from_config(config: &crate::config::Config, sdk: &aws_config::SdkConfig) -> Self {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        Self {
            ec2: config.project.as_ref().map(|project| {
                Ec2Discovery::new(
                    ec2.clone(),
                    project.clone(),
                    config.role.clone(),
                    config.port,
                )
            }),
            target_groups: (!config.target_group_arns.is_empty()).then(|| {
                TargetGroupDiscovery::new(
                    aws_sdk_elasticloadbalancingv2::Client::new(sdk),
                    ec2.clone(),
                    config.target_group_arns.clone(),
                    config.port,
                )
                .with_group_paths(config.group_paths)
            }),
        }
    }
}

impl Discover for Discovery {
    /// Both sources at once; an instance a target group leaves out (starting, draining, stopped)
    /// is left out of the tag discovery too, so the two never disagree about it.
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        let ec2 = async {
            match &self.ec2 {
                Some(d) => d.discover().await,
                None => Ok(Vec::new()),
            }
        };
        let groups = async {
            match &self.target_groups {
                Some(d) => d.targets().await,
                None => Ok(TargetGroupTargets::default()),
            }
        };
        let (tagged, grouped) = tokio::join!(ec2, groups);
        merge(tagged?, grouped?)
    }
}

/// The tagged instances a target group does not leave out, and the groups' targets. Registered
/// targets that are all left out (a deploy swapping every target: old ones draining, new ones
/// booting) and nothing else found is not "no backends": the error says why, and the sweep
/// treats it as a discovery that could not tell.
fn merge(tagged: Vec<Target>, grouped: TargetGroupTargets) -> Result<Vec<Target>, AwsError> {
    // An address both sources name is asked as its group asks (HTTPS, say), under its tag's name.
    let group_checks: std::collections::HashMap<SocketAddr, &Check> =
        grouped.targets.iter().map(|t| (t.addr, &t.check)).collect();
    let mut targets: Vec<Target> = tagged
        .into_iter()
        .filter(|t| {
            t.instance
                .as_ref()
                .is_none_or(|id| !grouped.left_out.contains(id))
                && !grouped.left_out_addrs.contains(&t.addr.ip())
        })
        .map(|mut t| {
            if let Some(check) = group_checks.get(&t.addr) {
                t.check = (*check).clone();
            }
            t
        })
        .collect();
    drop(group_checks);
    targets.extend(grouped.targets);
    if targets.is_empty() && !(grouped.left_out.is_empty() && grouped.left_out_addrs.is_empty()) {
        return Err(AwsError {
            operation: "elasticloadbalancing:DescribeTargetHealth",
            code: "NoTargetSettled".into(),
            message: "every registered target is initial, draining or stopped".into(),
            status: None,
            retryable: true,
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_asked_as_its_health_check_asks() {
        use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetGroup};
        let https = TargetGroup::builder()
            .protocol(ProtocolEnum::Https)
            .health_check_protocol(ProtocolEnum::Https)
            .health_check_port("traffic-port")
            .health_check_path("/ready")
            .build();
        assert_eq!(
            GroupCheck::of(&https, true),
            GroupCheck {
                check: Check {
                    tls: true,
                    path: Some("/ready".into())
                },
                port: None
            }
        );
        // An NLB's TCP check on a TLS listener's group: TLS, the sweeper's own path.
        let tls_tcp_check = TargetGroup::builder()
            .protocol(ProtocolEnum::Tls)
            .health_check_protocol(ProtocolEnum::Tcp)
            .health_check_port("9000")
            .build();
        assert_eq!(
            GroupCheck::of(&tls_tcp_check, true),
            GroupCheck {
                check: Check::HTTPS,
                port: Some(9000)
            }
        );
        // An HTTP check of an HTTPS group is plain; a path that cannot be asked is not used.
        let odd = TargetGroup::builder()
            .protocol(ProtocolEnum::Https)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path("/a b")
            .build();
        assert_eq!(GroupCheck::of(&odd, true), GroupCheck::default());
        // By default only the protocol is taken: SWEEP_PATH on the registered port.
        assert_eq!(
            GroupCheck::of(&https, false),
            GroupCheck {
                check: Check::HTTPS,
                port: None
            }
        );
    }

    fn instance(id: &str, last: u8) -> Target {
        Target {
            addr: SocketAddr::from(([10, 0, 0, last], 8080)),
            name: id.to_string(),
            instance: Some(id.to_string()),
            check: Default::default(),
        }
    }

    /// A scale-in with a lifecycle hook: the instance is still running and tagged, but its target
    /// group drains it (or it is still `initial`, booting): the tag discovery leaves it out too,
    /// by instance id or, for an IP target group, by address.
    #[test]
    fn an_instance_a_target_group_leaves_out_is_not_probed_through_its_tags() {
        let tagged = vec![
            instance("i-a", 1),
            instance("i-draining", 2),
            instance("i-booting", 3),
            instance("i-by-address", 4),
        ];
        let grouped = TargetGroupTargets {
            targets: vec![instance("i-a", 1)],
            left_out: ["i-draining", "i-booting"]
                .map(String::from)
                .into_iter()
                .collect(),
            left_out_addrs: [IpAddr::from([10, 0, 0, 4])].into_iter().collect(),
        };
        let merged = merge(tagged, grouped).unwrap();
        let ids: Vec<&str> = merged.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            ids,
            ["i-a", "i-a"],
            "the same address twice is one target to the sweep"
        );
    }

    /// Which target group words leave a target out: not every `unused` (a group no load
    /// balancer uses cannot hide a tagged instance).
    #[test]
    fn only_booting_draining_and_stopped_targets_are_left_out() {
        assert!(left_out("initial", "Elb.RegistrationInProgress"));
        assert!(left_out("initial", "Elb.InitialHealthChecking"));
        assert!(left_out("draining", "Target.DeregistrationInProgress"));
        assert!(left_out("unused", "Target.InvalidState"));
        assert!(!left_out("unused", "Target.NotInUse"));
        assert!(!left_out("unused", "Target.NotRegistered"));
        assert!(!left_out("unhealthy", "Target.FailedHealthChecks"));
        assert!(!left_out("healthy", ""));
    }

    /// A deploy that swaps every registered target at once: nothing settled is not "no backends".
    #[test]
    fn every_target_left_out_is_no_verdict_not_an_empty_fleet() {
        let grouped = TargetGroupTargets {
            targets: Vec::new(),
            left_out: ["i-old", "i-new"].map(String::from).into_iter().collect(),
            left_out_addrs: Default::default(),
        };
        let err = merge(Vec::new(), grouped).unwrap_err();
        assert_eq!(err.code, "NoTargetSettled");
        assert!(
            merge(Vec::new(), TargetGroupTargets::default())
                .unwrap()
                .is_empty()
        );
    }
}
