//! The echo baseline op: one RPC to the bare tonic echo server with messages
//! padded to the encoded sizes of the vault RPC it stands in for.
use tonic::transport::Channel;

use crate::driver::{Failure, Op, Worker};
use crate::echo::pb::EchoRequest;
use crate::echo::pb::echo_client::EchoClient;
use crate::ops::status_message;
use crate::sizes::{self, Sizes};

#[derive(Debug)]
pub struct Echo {
    clients: Vec<EchoClient<Channel>>,
    request: EchoRequest,
}

impl Echo {
    pub fn new(channels: Vec<Channel>, sizes: &Sizes) -> Self {
        Self { clients: channels.into_iter().map(EchoClient::new).collect(), request: sizes::echo_request(*sizes) }
    }
}

pub struct EchoWorker {
    client: EchoClient<Channel>,
    request: EchoRequest,
}

impl Op for Echo {
    type Worker = EchoWorker;

    fn worker(&self, index: usize) -> EchoWorker {
        EchoWorker { client: self.clients[index % self.clients.len()].clone(), request: self.request.clone() }
    }
}

impl Worker for EchoWorker {
    async fn call(&mut self) -> Result<(), Failure> {
        match self.client.echo(self.request.clone()).await {
            Ok(_) => Ok(()),
            Err(s) => Err(Failure::Error(status_message(&s))),
        }
    }
}
