//! `statecraft info`: a running server's figures in sections, like Redis'
//! INFO — server, keyspace, memory, persistence, results, queues — read
//! from `GET /v1/stats` (the same figures `/metrics`, the dashboard and
//! `statecraft top` show). `--json` prints the selection as one object.
//!
//! Invariant: a figure the server does not report (no data dir, no /proc)
//! is printed as `-`, never as 0.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cmd::remote::{ServerOpts, http_client, http_error, problem_text};

/// Arguments of `statecraft info`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Sections: server, keyspace, memory, persistence, results, queues. The figures \
come from GET /v1/stats (docs/http-api.md); their meaning is in docs/metrics.md."
)]
pub struct InfoArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    /// Print one JSON object instead of sections.
    #[arg(long)]
    pub json: bool,
}

/// Runs `statecraft info`.
pub fn run(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.http_base("info")?;
    let runtime = crate::cmd::remote::client_runtime()?;
    let stats: Value = runtime.block_on(async {
        let client = http_client(args.server.token.as_deref(), Some(Duration::from_secs(10)))?;
        let url = format!("{base}/v1/stats");
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(e, &base))?;
        if !resp.status().is_success() {
            anyhow::bail!("GET {url}: {}", problem_text(resp).await);
        }
        resp.json().await.map_err(|e| http_error(e, &base))
    })?;
    let info = sections(&stats);
    if args.json {
        println!("{info}");
    } else {
        print!("{}", render(&info));
    }
    Ok(ExitCode::SUCCESS)
}

/// The INFO selection of a `/v1/stats` answer, by section.
pub fn sections(s: &Value) -> Value {
    let d = &s["durability"];
    let shards = s["shards"].as_array().cloned().unwrap_or_default();
    let sum = |k: &str| -> u64 { shards.iter().filter_map(|x| x[k].as_u64()).sum() };
    json!({
        "server": {
            "version": s["version"],
            "uptime_s": s["uptime_s"],
            "shards": shards.len(),
            "durable": !d.is_null(),
        },
        "keyspace": {
            "keys": s["keyspace"]["keys"],
            "cache_keys": s["keyspace"]["cache_keys"],
            "cache_hit_rate": s["keyspace"]["cache_hit_rate"],
            "cache_evictions": d["cache_evictions"],
        },
        "memory": {
            "rss_bytes": s["process"]["resident_memory_bytes"],
            "virtual_bytes": s["process"]["virtual_memory_bytes"],
            "data_dir_bytes": s["keyspace"]["data_dir_bytes"],
            "cpu_seconds": s["process"]["cpu_seconds"],
            "threads": s["process"]["threads"],
            "open_fds": s["process"]["open_fds"],
        },
        "persistence": {
            "fsyncs": d["fsyncs"],
            "log_records": d["records"],
            "checkpoints": d["checkpoints"],
            "checkpoint_keys": d["checkpoint_keys"],
            "checkpoint_p99_ms": d["checkpoint_us"]["p99"].as_u64().map(|us| us as f64 / 1e3),
            "recovery_records": d["recovery_records"],
            "recovery_ms": d["recovery_ms"],
            "poisoned": d["poisoned"],
        },
        "results": s["results"],
        "queues": {
            "depth": sum("depth"),
            "capacity": sum("capacity"),
            "max_depth": shards.iter().filter_map(|x| x["max_depth"].as_u64()).max(),
            "batches": sum("batches"),
            "capacity_changes": sum("capacity_changes"),
        },
    })
}

/// `# Section` then `name:value` lines, as Redis prints INFO.
pub fn render(info: &Value) -> String {
    let mut out = String::new();
    let Some(sections) = info.as_object() else {
        return out;
    };
    for (name, fields) in sections {
        let mut title = name.clone();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push_str(&format!("# {title}\n"));
        if let Some(fields) = fields.as_object() {
            for (k, v) in fields {
                let v = match v {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_f64() => {
                        format!("{:.3}", n.as_f64().unwrap_or_default())
                    }
                    other => other.to_string(),
                };
                out.push_str(&format!("{k}:{v}\n"));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_figures_print_as_a_dash_not_zero() {
        let info = sections(&json!({"version": "0.1.0", "shards": [], "keyspace": {}}));
        let text = render(&info);
        assert!(text.contains("# Keyspace\n"), "{text}");
        assert!(text.contains("keys:-\n"), "{text}");
        assert!(text.contains("rss_bytes:-\n"), "{text}");
        assert!(text.contains("version:0.1.0\n"), "{text}");
    }
}
