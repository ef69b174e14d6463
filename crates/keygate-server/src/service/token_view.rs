//! A token as the API shows it, which the operations of `tokens` answer with and the events of
//! `events` carry: a module of its own, so that those two need not import each other.

use keygate_core::TokenId;
use keygate_store::{CreditState, TokenRecord};
use time::OffsetDateTime;

use crate::dto::TokenView;
use crate::state::AppState;

/// The token as the API shows it. What is left of its credits counts what this node holds
/// of them unspent, so one node shows exactly what is left.
pub fn view(state: &AppState, rec: TokenRecord) -> TokenView {
    let left = rec.credits.map(|c| credits_left(state, &rec.id, &c));
    let mut view = TokenView::from(rec);
    if let (Some(c), Some(left)) = (&mut view.credits, left) {
        c.remaining = left;
    }
    view
}

/// What is left of a token's credits now: the pool (refilled, if a refill is due) and what this
/// node holds of it unspent.
pub(super) fn credits_left(state: &AppState, id: &TokenId, stored: &CreditState) -> u64 {
    let now = OffsetDateTime::now_utc();
    let held = state.verifier.credits().unspent_of(id, stored, now);
    stored.remaining_at(now).saturating_add(held)
}
