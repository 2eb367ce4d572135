//! The internal `Vault` service, reachable only over mTLS by allowed platform
//! services (see `tls`); it returns card data in clear.
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use common::card::loggable;
use proto::vault::v1 as pb;

use super::{convert, tls, within_deadline};
use crate::domain::single_use::SingleUseTokens;
use crate::storage::TokenStore;

pub struct VaultService<S> {
    tokens: Arc<SingleUseTokens<S>>,
    allowed_clients: Arc<[String]>,
    max_deadline: Duration,
}

impl<S> VaultService<S> {
    pub fn new(tokens: Arc<SingleUseTokens<S>>, allowed_clients: Arc<[String]>, max_deadline: Duration) -> Self {
        Self { tokens, allowed_clients, max_deadline }
    }
}

#[tonic::async_trait]
impl<S: TokenStore> pb::vault_server::Vault for VaultService<S> {
    async fn detokenize(
        &self,
        request: Request<pb::DetokenizeRequest>,
    ) -> Result<Response<pb::DetokenizeResponse>, Status> {
        let actor = tls::peer_identity(&request, &self.allowed_clients);
        let pb::DetokenizeRequest { merchant_id, token, consumer_ref } = request.get_ref();
        let result = within_deadline(
            request.metadata(),
            self.max_deadline,
            self.tokens.detokenize(merchant_id, token, consumer_ref),
        )
        .await;
        let (merchant_id, token_id) = (loggable(merchant_id), loggable(token));
        match &result {
            Ok(_) => tracing::info!(merchant_id, token_id, actor, "token detokenized"),
            Err(e) => tracing::info!(merchant_id, token_id, actor, error = %e, "detokenize refused"),
        }
        Ok(Response::new(convert::detokenized(result?)))
    }
}
