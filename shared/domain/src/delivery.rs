//! Delivery-status policy: statuses only move forward. Providers deliver callbacks late, twice and out
//! of order; a `sent` arriving after `delivered` must not undo it.

use crate::model::DeliveryStatus;

impl DeliveryStatus {
    /// Position in the lifecycle. Terminal outcomes share a rank: whichever arrives first stands, and
    /// a later contradictory terminal callback is ignored. `read` outranks them all (a read receipt
    /// implies delivery).
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Received => 0,
            DeliveryStatus::Queued => 1,
            DeliveryStatus::Sending => 2,
            DeliveryStatus::Sent => 3,
            DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed => 4,
            DeliveryStatus::Read => 5,
        }
    }

    pub fn can_advance_to(self, next: DeliveryStatus) -> bool {
        next.rank() > self.rank()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Received => "received",
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Read => "read",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [DeliveryStatus; 8] = [
        DeliveryStatus::Received,
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Undelivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Read,
    ];

    #[test]
    fn the_documented_lifecycle_moves_forward() {
        use DeliveryStatus::*;
        assert!(Queued.can_advance_to(Sent));
        assert!(Sent.can_advance_to(Delivered));
        assert!(Sent.can_advance_to(Undelivered));
        assert!(Sending.can_advance_to(Failed));
        assert!(Delivered.can_advance_to(Read));
        assert!(!Delivered.can_advance_to(Sent));
        assert!(!Delivered.can_advance_to(Failed));
        assert!(!Failed.can_advance_to(Delivered));
        assert!(!Sent.can_advance_to(Sent));
    }

    proptest! {
        /// Applying any sequence of callbacks in any order ends at a status of maximal rank among
        /// those seen, and the status never moves backwards on the way.
        #[test]
        fn any_callback_order_never_regresses(seq in proptest::collection::vec(0usize..8, 0..20)) {
            let mut current = DeliveryStatus::Queued;
            for i in seq.iter().map(|&i| ALL[i]) {
                let before = current.rank();
                if current.can_advance_to(i) { current = i; }
                prop_assert!(current.rank() >= before);
            }
            let max = seq.iter().map(|&i| ALL[i].rank()).chain([1]).max().unwrap();
            prop_assert_eq!(current.rank(), max);
        }
    }
}
