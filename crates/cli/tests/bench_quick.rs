//! `statecraft bench --quick --workloads W6` end to end: it runs the
//! in-process workload (and the Python peer when python3 is there), and
//! writes results.json, report.md and chart.svg under `--out/<timestamp>/`.
//! Nothing here looks at how fast anything was.

use std::process::Command;

#[test]
fn quick_w6_writes_the_three_files() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "bench",
            "--quick",
            "--workloads",
            "W6",
            "--events",
            "100000",
        ])
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .expect("bench runs");
    assert!(
        out.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<_> = std::fs::read_dir(out_dir.path())
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "one timestamped directory: {runs:?}");
    let dir = &runs[0];

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json"))
            .expect("valid JSON");
    let w6 = &results["workloads"][0];
    assert_eq!(w6["id"], "W6");
    let contenders = w6["contenders"].as_array().expect("contenders");
    assert!(contenders.len() >= 3);
    for c in contenders.iter().take(3) {
        let run = &c["runs"][0];
        assert_eq!(run["events"], 100_000, "{c}");
        assert_eq!(run["errors"], 0, "{c}");
        assert!(c["median"]["events_per_s"].as_f64().expect("median") > 0.0);
    }
    assert!(
        results["limits"]["fsync_4k"]["per_s"]
            .as_f64()
            .expect("limits")
            > 0.0
    );
    assert!(results["machine"]["nproc"].as_u64().expect("nproc") >= 1);
    assert!(results["targets"].as_array().is_some_and(|t| !t.is_empty()));

    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(report.contains("## W6"));
    assert!(report.contains("statecraft in-process ack=applied"));
    assert!(report.contains("## BENCH.md targets"));

    let svg = std::fs::read_to_string(dir.join("chart.svg")).expect("chart.svg");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(!svg.contains("<script"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("W6") && stdout.contains("results:"),
        "{stdout}"
    );
}
