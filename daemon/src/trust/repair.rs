//! `repair` and `trust forget`: the explicit ways out of a repository that
//! does not verify, or that tufd must stop trusting.

use super::txn::{Change, Read};
use super::{EventSink, Trust, TrustError, existing_kept, gun};

impl Trust {
    /// `repair`: makes a repository whose delegations do not all verify
    /// verify again, naming every tag dropped and why (see
    /// [`super::intent::repair::apply`]).
    pub async fn repair(&self, repository: &str, events: &EventSink) -> Result<Change, TrustError> {
        let g = gun(repository)?;
        let engine = &self.engine;
        engine
            .transact_with(&g, events, Read::Lenient, |fetched, held| {
                let g = g.clone();
                async move {
                    let name = g.as_str();
                    let (f, draft) = existing_kept(name, fetched)?;
                    let stored = engine.stored(name).await?;
                    super::intent::repair::apply(name, &f, draft, &held, stored.as_ref())
                }
            })
            .await
    }

    /// `trust forget`: removes `repository` from the local trust store, so
    /// the next operation trusts what the server serves anew. Whether it
    /// was stored.
    pub async fn forget(&self, repository: &str) -> Result<bool, TrustError> {
        let g = gun(repository)?;
        let lock = self.engine.lock_for(g.as_str());
        let _guard = lock.lock().await;
        self.engine.pending.settled(g.as_str()).await;
        self.engine.recent.forget(g.as_str());
        let forgotten = self.engine.store.forget(g.as_str())?;
        tracing::warn!(gun = %g.as_str(), forgotten, "repository removed from the trust store");
        Ok(forgotten)
    }
}
