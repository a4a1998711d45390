//! A ready health-sweeper world: backends as EC2 instances in the emulator, tagged as in the example deployment
//! tags them, whose private addresses are loopback addresses where real HTTP servers listen; an
//! SNS topic with a subscribed queue; the state bucket. The emulator accepts a VPC on
//! 127.0.0.0/16, so discovery and probing run for real without leaving loopback.

use std::net::{Ipv4Addr, SocketAddr};

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};

use crate::Result;
use crate::http::{Behaviour, HttpServer};
use crate::moto::Moto;
use crate::paths::free_port;

pub const FUNCTION: &str = "health-sweeper";
pub const BUCKET: &str = crate::STATE_BUCKET;
pub const PROJECT: &str = "des";
/// The path probed: the example deployment's, not the default, so the tests show the configured
/// one is used.
pub const PROBE_PATH: &str = "/despachos/reporte";

pub struct SweepWorld {
    pub moto: Moto,
    pub topic_arn: String,
    pub queue_url: String,
    /// The port every backend listens on (the sweeper's `SWEEP_PORT`).
    pub port: u16,
    /// `(name, address, server)`; a `None` server refuses connections.
    pub backends: Vec<(String, SocketAddr, Option<HttpServer>)>,
    pub instance_ids: Vec<String>,
    /// The VPC on 127.0.0.0/16 the instances live in.
    pub vpc_id: String,
}

impl SweepWorld {
    /// `behaviours[i]` for backend `des-backend-<a, b, c, ...>` at 127.0.0.(20 + i).
    pub async fn start(behaviours: &[Behaviour]) -> Result<Self> {
        let moto = Moto::start().await?;
        let config = moto.sdk_config().await;
        let (topic_arn, queue_url) = moto
            .seed_state_and_topic(BUCKET, "des-backend-alerts", "alerts-inbox")
            .await?;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let vpc = ec2
            .create_vpc()
            .cidr_block("127.0.0.0/16")
            .send()
            .await?
            .vpc
            .and_then(|v| v.vpc_id)
            .unwrap_or_default();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("127.0.0.0/24")
            .send()
            .await?
            .subnet
            .and_then(|s| s.subnet_id)
            .unwrap_or_default();
        let port = free_port()?;
        let mut backends = Vec::new();
        let mut instance_ids = Vec::new();
        for (i, behaviour) in behaviours.iter().enumerate() {
            let name = format!("des-backend-{}", (b'a' + i as u8) as char);
            let ip = Ipv4Addr::new(127, 0, 0, 20 + i as u8);
            let addr = SocketAddr::from((ip, port));
            let tags = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("Project").value(PROJECT).build())
                .tags(Tag::builder().key("Role").value("backend").build())
                .tags(Tag::builder().key("Name").value(&name).build())
                .build();
            let run = ec2
                .run_instances()
                .image_id("ami-12c6146b")
                .min_count(1)
                .max_count(1)
                .subnet_id(&subnet)
                .private_ip_address(ip.to_string())
                .tag_specifications(tags)
                .send()
                .await?;
            instance_ids.extend(
                run.instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(String::from)),
            );
            let server = HttpServer::bind(addr, *behaviour).await?;
            backends.push((name, addr, Some(server)));
        }
        Ok(Self {
            vpc_id: vpc,
            moto,
            topic_arn,
            queue_url,
            port,
            backends,
            instance_ids,
        })
    }

    /// A target group named `name` in the world's VPC holding `targets` (instance ids or IP
    /// addresses, each with its port), registered in batches as a large deployment would be.
    pub async fn target_group(
        &self,
        name: &str,
        kind: TargetTypeEnum,
        targets: &[(String, u16)],
    ) -> Result<String> {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&self.moto.sdk_config().await);
        let arn = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(self.port))
            .vpc_id(&self.vpc_id)
            .target_type(kind)
            .send()
            .await?
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .unwrap_or_default()
            .to_string();
        for batch in targets.chunks(500) {
            let descriptions = batch
                .iter()
                .map(|(id, port)| {
                    TargetDescription::builder()
                        .id(id)
                        .port(i32::from(*port))
                        .build()
                })
                .collect::<Vec<_>>();
            elb.register_targets()
                .target_group_arn(&arn)
                .set_targets(Some(descriptions))
                .send()
                .await?;
        }
        Ok(arn)
    }

    /// The function's environment: emulator, state, SNS, discovery of the tagged instances, and
    /// probes allowed on loopback only.
    pub fn env(&self, probe_timeout_ms: u64) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.extend(
            [
                ("STATE_BUCKET", BUCKET.to_string()),
                ("NOTIFY_SNS_TOPIC_ARN", self.topic_arn.clone()),
                ("SWEEP_PROJECT", PROJECT.to_string()),
                ("SWEEP_PORT", self.port.to_string()),
                ("SWEEP_PATH", PROBE_PATH.to_string()),
                ("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/8".to_string()),
                ("SWEEP_TIMEOUT_MS", probe_timeout_ms.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    /// Changes how backend `index` answers; `None` stops it (connections refused).
    pub async fn set(&mut self, index: usize, behaviour: Option<Behaviour>) -> Result<()> {
        let Some((_, addr, server)) = self.backends.get_mut(index) else {
            return Ok(());
        };
        match (behaviour, server.as_ref()) {
            (None, _) => *server = None,
            (Some(b), Some(running)) => running.set_behaviour(b),
            (Some(b), None) => *server = Some(HttpServer::bind(*addr, b).await?),
        }
        Ok(())
    }
}
