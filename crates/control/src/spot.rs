//! Preemptible (spot) groups (ADR 0012): the hourly price fixed at creation (the catalog's
//! compute price of the size times its `spot_ratio`), the refusal of a limit below it, and
//! the reclaim of a group: an event `SpotToBeReleased` the notice time ahead, then its
//! containers are stopped and it ends `Expired` (its billed period closes at that moment).
//! A group is reclaimed to make room for a pay-as-you-go one (`schedule.rs`) or, at start,
//! when the catalog's price has passed its `SpotPriceLimit`, in both cases only once its
//! protection period (`SpotDuration`) has ended.

use std::sync::Arc;
use std::time::Duration;

use berth_core::price::{quote, Decimal};
use berth_core::{Event, EventType, GroupId, GroupRecord, GroupSpec, GroupStatus, Size};
use chrono::{DateTime, Utc};

use crate::service::{Control, ControlError};

/// The event a spot group gets the notice time before it is reclaimed (ECI's and ACK's).
pub const REASON_TO_BE_RELEASED: &str = "SpotToBeReleased";
/// The event of a spot group created pay-as-you-go as it allowed (`StrictSpot=false`).
pub const REASON_FALLBACK: &str = "SpotFallback";
/// The event of a spot group reclaimed.
pub const REASON_RELEASED: &str = "SpotReleased";
/// The reason of its containers' termination.
pub const REASON_EXPIRED: &str = "Expired";

impl Control {
    /// The hourly spot price of `spec`'s size now.
    fn spot_price(&self, spec: &GroupSpec) -> Decimal {
        let prices = self.billing_prices();
        let size = Size {
            cpu: spec.cpu,
            memory: spec.memory,
        };
        quote(&prices, size, spec.ephemeral_storage_gib()).spot_hour
    }

    /// Fixes the price in force of a spot group (at creation, and at an update of its size):
    /// refused when its `SpotPriceLimit` is below it (ECI does not create such a group),
    /// unless it may fall back (`StrictSpot=false`, at creation only): then it becomes a
    /// pay-as-you-go group, and the event saying so is returned.
    pub(crate) fn fix_spot_price(
        &self,
        spec: &mut GroupSpec,
        at_create: bool,
    ) -> Result<Option<Event>, ControlError> {
        if spec.spot.is_none() {
            return Ok(None);
        }
        let price = self.spot_price(spec);
        let Some(terms) = spec.spot.as_mut() else {
            return Ok(None);
        };
        if let Some(limit) = limit_of(&terms.price_limit) {
            if limit < price {
                if at_create && terms.fallback {
                    spec.spot = None;
                    return Ok(Some(fallback_event(&format!(
                        "its SpotPriceLimit {limit} is below the spot price {price} per hour"
                    ))));
                }
                return Err(ControlError::SpotPriceLimitTooLow {
                    limit: limit.to_string(),
                    price: price.to_string(),
                });
            }
        }
        terms.hour_price = Some(price.to_string());
        Ok(None)
    }

    /// At start: every running spot group whose `SpotPriceLimit` the catalog's price now
    /// passes is reclaimed once its protection period has ended.
    pub(crate) fn reclaim_over_limit(self: &Arc<Self>, groups: &[GroupRecord]) {
        for rec in groups {
            let Some(terms) = &rec.spec.spot else {
                continue;
            };
            if !crate::schedule::holds_room(rec) || rec.status == GroupStatus::Terminating {
                continue;
            }
            let Some(limit) = limit_of(&terms.price_limit) else {
                continue;
            };
            let price = self.spot_price(&rec.spec);
            if limit >= price {
                continue;
            }
            if !self.mark_reclaiming(&rec.id) {
                continue;
            }
            let at = terms.protected_until(rec.creation_time).max(Utc::now());
            self.spawn_reclaim(
                rec.id.clone(),
                format!("the spot price {price} per hour is above its SpotPriceLimit {limit}"),
                at,
            );
        }
    }

    /// Reclaims spot group `id`: at `at` it is told, the notice time later it ends Expired.
    pub(crate) fn spawn_reclaim(self: &Arc<Self>, id: GroupId, why: String, at: DateTime<Utc>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep((at - Utc::now()).to_std().unwrap_or(Duration::ZERO)).await;
            if let Err(e) = this.reclaim(&id, &why).await {
                tracing::warn!(group = %id, error = %e, "cannot reclaim a spot group");
            }
        });
    }

    async fn reclaim(self: &Arc<Self>, id: &GroupId, why: &str) -> Result<(), ControlError> {
        if !self.announce_reclaim(id, why).await? {
            return Ok(());
        }
        tokio::time::sleep(self.schedule_policy().notice).await;
        self.expire_reclaimed(id, why).await
    }

    /// Tells spot group `id` it is reclaimed in the notice time (`SpotToBeReleased`);
    /// whether it was still live.
    pub(crate) async fn announce_reclaim(
        &self,
        id: &GroupId,
        why: &str,
    ) -> Result<bool, ControlError> {
        let notice = self.schedule_policy().notice;
        let mut live = false;
        let res = self
            .store
            .modify_group(id, &mut |r| {
                live = !r.status.is_final() && r.status != GroupStatus::Terminating;
                if live {
                    r.push_event(Event::new(
                        EventType::Warning,
                        REASON_TO_BE_RELEASED,
                        format!(
                            "The preemptible container group will be released in {} s: {why}",
                            notice.as_secs()
                        ),
                        None,
                        Utc::now(),
                    ));
                }
            })
            .await;
        match res {
            Ok(_) if live => {}
            Ok(_) | Err(berth_store::StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(group = %id, notice_s = notice.as_secs(), why, "spot group to be reclaimed");
        Ok(true)
    }

    /// Ends spot group `id` `Expired` and has its node stop it (the notice time is over).
    pub(crate) async fn expire_reclaimed(
        &self,
        id: &GroupId,
        why: &str,
    ) -> Result<(), ControlError> {
        let mut expired = false;
        let res = self
            .store
            .modify_group(id, &mut |r| {
                expired = !r.status.is_final() && r.status != GroupStatus::Terminating;
                if !expired {
                    return;
                }
                let now = Utc::now();
                r.status = GroupStatus::Expired;
                r.expired_time = Some(now);
                r.push_event(Event::new(
                    EventType::Warning,
                    REASON_RELEASED,
                    format!("The preemptible container group was released: {why}"),
                    None,
                    now,
                ));
            })
            .await;
        let rec = match res {
            Ok(rec) if expired => rec,
            Ok(_) | Err(berth_store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(group = %id, "spot group reclaimed");
        // The node stops what runs (a final record is what it converges to), then the room
        // is free for the group that waits.
        self.node()?.apply(rec).await;
        self.release(id);
        self.terminate_containers(
            id,
            REASON_EXPIRED,
            "stopped as the preemptible group was released",
        )
        .await
    }
}

/// The event of a group that asked to be preemptible and was created pay-as-you-go.
pub(crate) fn fallback_event(why: &str) -> Event {
    Event::new(
        EventType::Normal,
        REASON_FALLBACK,
        format!("No preemptible container group could be had ({why}): created pay-as-you-go as StrictSpot=false allows"),
        None,
        Utc::now(),
    )
}

fn limit_of(text: &Option<String>) -> Option<Decimal> {
    text.as_deref()
        .and_then(|l| Decimal::from_str_exact(l).ok())
}
