//! What a delivery deadline can see. A deadline hands a sent step over to
//! the next one when no delivery report came in time; that is only sound
//! where the channel reports delivery. Adapters declare whether theirs
//! does ([`omniroute_channel::Adapter::delivery_reports`]: an email relay
//! that offers DSN does, one that does not says nothing after its `250`);
//! where it does not, the tenant's rule ([`UnreportedDeadline`],
//! `routing.deadline_without_delivery_reports`) decides, and the route
//! says which applies on each step (`RouteStep.deadline_evidence`), so that
//! a caller can see what the deadline can and cannot see.

use omniroute_channel::{Channel, DeliveryReports};
use omniroute_domain::{DeliveryEvidence, PlannedChannel};

pub use omniroute_domain::UnreportedDeadline;

/// Marks each step with a deadline by what the deadline can see: a
/// delivery report where the channel gives one (`reports`), else the
/// tenant's `rule` (acceptance ends it: the deadline goes; or it is kept,
/// seeing nothing).
pub fn mark(
    plan: &mut [PlannedChannel],
    rule: UnreportedDeadline,
    reports: impl Fn(Channel) -> DeliveryReports,
) {
    for step in plan.iter_mut().filter(|s| s.deliver_within.is_some()) {
        step.evidence = match (reports(step.channel), rule) {
            (DeliveryReports::Reported, _) => DeliveryEvidence::Report,
            (DeliveryReports::NotReported, UnreportedDeadline::Acceptance) => {
                step.deliver_within = None;
                DeliveryEvidence::Acceptance
            }
            (DeliveryReports::NotReported, UnreportedDeadline::Keep) => DeliveryEvidence::Nothing,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use omniroute_channel::{Address, PhoneRegion};

    use super::*;

    fn plan() -> Vec<PlannedChannel> {
        let mut email = PlannedChannel::to(
            &Address::parse(Channel::Email, "anna@example.com", PhoneRegion::default()).unwrap(),
        );
        email.deliver_within = Some(Duration::from_secs(600));
        let whatsapp = PlannedChannel::to(
            &Address::parse(Channel::Whatsapp, "+4915123456789", PhoneRegion::default()).unwrap(),
        );
        vec![email, whatsapp]
    }

    fn email_unreported(channel: Channel) -> DeliveryReports {
        if channel == Channel::Email {
            DeliveryReports::NotReported
        } else {
            DeliveryReports::Reported
        }
    }

    #[test]
    fn where_delivery_is_reported_the_deadline_waits_for_the_report() {
        for rule in [UnreportedDeadline::Acceptance, UnreportedDeadline::Keep] {
            let mut plan = plan();
            mark(&mut plan, rule, |_| DeliveryReports::Reported);
            assert_eq!(plan[0].deliver_within, Some(Duration::from_secs(600)));
            assert_eq!(plan[0].evidence, DeliveryEvidence::Report);
        }
    }

    #[test]
    fn where_it_is_not_the_tenants_rule_decides_and_says_so() {
        let mut plan = plan();
        mark(&mut plan, UnreportedDeadline::Acceptance, email_unreported);
        assert_eq!(plan[0].deliver_within, None, "acceptance ends it");
        assert_eq!(plan[0].evidence, DeliveryEvidence::Acceptance);
        let mut plan = super::tests::plan();
        mark(&mut plan, UnreportedDeadline::Keep, email_unreported);
        assert_eq!(plan[0].deliver_within, Some(Duration::from_secs(600)));
        assert_eq!(plan[0].evidence, DeliveryEvidence::Nothing);
        // The last step has no deadline: nothing to mark.
        assert_eq!(plan[1].evidence, DeliveryEvidence::Report);
    }

    #[test]
    fn the_rule_reads_its_settings_spelling() {
        assert_eq!(
            UnreportedDeadline::parse("acceptance"),
            Some(UnreportedDeadline::Acceptance)
        );
        assert_eq!(
            UnreportedDeadline::parse("keep"),
            Some(UnreportedDeadline::Keep)
        );
        assert_eq!(UnreportedDeadline::parse("sometimes"), None);
    }
}
