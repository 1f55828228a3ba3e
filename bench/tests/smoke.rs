//! The benchmark's smoke mode, in-process: every phase runs on the embedded
//! store for a few seconds and counts something. It checks that the tool
//! works, not how fast anything is.

#[test]
fn smoke_mode_runs_every_phase() {
    let report = match omniroute_bench::smoke_blocking() {
        Ok(report) => report,
        Err(e) => panic!("{e:#}"),
    };
    assert!(report.smoke_problems().is_empty());
    let markdown = report.markdown();
    for section in [
        "### Summary",
        "### SendMessage and the gRPC ceiling, closed loop",
        "### SendMessage, open loop",
        "### BatchSendMessages",
        "### Dispatch",
    ] {
        assert!(markdown.contains(section), "no {section:?} in\n{markdown}");
    }
}
