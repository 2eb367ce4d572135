//! The public `Tokens` service: merchants' clients create and read single-use
//! tokens with their public (or secret) key.
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use common::auth::{Caller, DirectoryHandle, KeyKind};
use common::server::CallInfo;
use proto::vault::v1 as pb;

use super::{convert, within_deadline};
use crate::domain::single_use::SingleUseTokens;
use crate::domain::store::TokenStore;

pub struct TokensService<S> {
    tokens: Arc<SingleUseTokens<S>>,
    directory: DirectoryHandle,
    max_deadline: Duration,
}

impl<S> TokensService<S> {
    pub fn new(tokens: Arc<SingleUseTokens<S>>, directory: DirectoryHandle, max_deadline: Duration) -> Self {
        Self { tokens, directory, max_deadline }
    }

    /// The preamble of every call: the merchant behind the key, and the
    /// call's deadline and correlation id.
    fn call<T>(&self, request: &Request<T>) -> Result<(Caller, CallInfo), Status> {
        let caller = self.directory.authenticate(request.metadata(), KEYS).map_err(Status::from)?;
        Ok((caller, CallInfo::of(request, self.max_deadline)))
    }
}

/// Omise's token endpoints take public-key authentication only: a secret key
/// here is PERMISSION_DENIED (it belongs on the server, never in a browser).
const KEYS: &[KeyKind] = &[KeyKind::Public];

#[tonic::async_trait]
impl<S: TokenStore> pb::tokens_server::Tokens for TokensService<S> {
    async fn create_token(&self, request: Request<pb::CreateTokenRequest>) -> Result<Response<pb::Token>, Status> {
        let (caller, call) = self.call(&request)?;
        let mut message = request.into_inner();
        let input = convert::card_input(message.card.get_or_insert_default());
        let created = within_deadline(&call, self.tokens.create(&caller.merchant_id, caller.livemode, &input)).await;
        match &created {
            Ok(t) => tracing::info!(merchant_id = %caller.merchant_id, token_id = %t.id, "token created"),
            Err(e) => tracing::info!(merchant_id = %caller.merchant_id, error = %e, "token refused"),
        }
        Ok(Response::new(convert::token(created?)))
    }

    async fn get_token(&self, request: Request<pb::GetTokenRequest>) -> Result<Response<pb::Token>, Status> {
        let (caller, call) = self.call(&request)?;
        let token =
            within_deadline(&call, self.tokens.get(&caller.merchant_id, caller.livemode, &request.get_ref().id))
                .await?;
        Ok(Response::new(convert::token(token)))
    }
}
