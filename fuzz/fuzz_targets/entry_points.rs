//! Every function's entry points on one input: the first byte picks the entry point, the rest
//! is the event JSON, the message text or the secret value. A panic, an overflow or a runaway
//! allocation (`-rss_limit_mb`) is a finding; `-timeout` catches hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let json = serde_json::from_slice::<serde_json::Value>(rest).ok();
    match which % 9 {
        0 => {
            if let Some(event) = json {
                if let Ok(envelope) = deploy_notifier::event::envelope(&event) {
                    let _ = deploy_notifier::ecs::interpret(&envelope);
                }
                let _ = deploy_notifier::event::classify(event);
            }
        }
        1 => {
            let _ = deploy_notifier::ci::parse_report(rest);
            let key = Secret::new(b"fuzz-signing-key-0123456789abcdef0123".to_vec());
            let (timestamp, signature) = text.split_once('\n').unwrap_or((&text, ""));
            let _ = deploy_notifier::ci::verify_signature(
                std::slice::from_ref(&key),
                Some(timestamp),
                Some(signature),
                rest,
                1_790_000_000,
                300,
            );
        }
        2 => {
            let _ = deploy_notifier::ci::signing_key::parse(&Secret::new(text.to_string()), "AWSCURRENT");
        }
        3 => {
            let _ = budget_alerter::budgets_text::parse(&text);
            let _ = budget_alerter::money::Amount::parse_text(&text);
            if let Some(event) = json {
                let _ = budget_alerter::event::classify(&event);
            }
        }
        4 => {
            if let Some(event) = json {
                let _ = snapshot_exporter::event::classify(&event);
            }
            let id = snapshot_exporter::identifier::export_identifier(&text);
            assert!(snapshot_exporter::identifier::is_valid(&id), "{text:?} -> {id:?}");
        }
        5 => {
            if let Some(event) = json {
                let _ = secret_rotator::event::parse(&event);
            }
        }
        6 => {
            let secret = Secret::new(text.to_string());
            if let Ok(secret_rotator::secret_value::SecretKind::Database(db)) =
                secret_rotator::secret_value::parse(&secret)
            {
                let _ = db.next_username();
                let _ = db.endpoint();
            }
            let _ = secret_rotator::secret_value::parse_master(&secret);
        }
        7 => {
            // Lines of NAME=value as the sweeper's environment.
            let pairs = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (format!("SWEEP_{k}"), v.to_string()));
            if let Ok(config) = health_sweeper::config::Config::from_vars(&Vars::from_pairs(pairs)) {
                for target in &config.static_targets {
                    assert!(config.is_allowed(&target.addr));
                }
            }
            let _ = health_sweeper::networks::Network::parse(&text);
            let _ = health_sweeper::networks::AllowedNetworks::parse(&text);
        }
        _ => {
            let _ = serde_json::from_slice::<health_sweeper::sweep_state::SweepState>(rest);
        }
    }
});
