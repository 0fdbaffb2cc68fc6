//! The service registry: `REGISTER`, `UNREGISTER`, `RESOLVE`, `SERVICES` (the registry itself is
//! [`crate::state::registry`]). Like work queues, the registry lives at the root of a tree, and a
//! slave forwards these commands there (see [`super::routed`]). Every change of a service's
//! instances is announced as `SET Registry::<service>=<instances>` to its listeners everywhere.

use bytes::Bytes;
use clacks_proto::{Reply, Request};

use super::logged;
use super::routed::{answer, error, forwarded, Ctx};
use crate::interclacks::routes::{Pending, REGISTRY_UNAVAILABLE};
use crate::session::{ClientError, Flow, Session};
use crate::state::registry::{meta_value, meta_without, Refusal};
use crate::state::State;
use crate::stats::Stats;

/// Whether `request` is a registry command.
pub(super) fn handles(request: &Request) -> bool {
    matches!(
        request,
        Request::Register { .. }
            | Request::Unregister { .. }
            | Request::Resolve { .. }
            | Request::Services
    )
}

/// Runs a registry command for `ctx` (see [`handles`]; other requests do nothing).
pub(super) fn run(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    request: Request,
) -> Flow {
    match request {
        Request::Register {
            service,
            endpoint,
            meta,
        } => register(s, state, ctx, service, endpoint, meta.unwrap_or_default()),
        Request::Unregister { service, id } => {
            if !forwarded(s, state, ctx, REGISTRY_UNAVAILABLE, &service, line, None) {
                match state.registry.unregister(ctx.owner, &service, &id) {
                    Ok(()) => {
                        Stats::bump(&s.shared.stats.registry_withdrawn);
                        state.announce_service(&service);
                    }
                    Err(r) => error(
                        s,
                        state,
                        ctx,
                        ClientError::Refused(r.token(), &[&service, &id]),
                    ),
                }
            }
            Flow::Continue
        }
        Request::Resolve { service } => {
            let waits_for = Some(Pending::Resolve(Bytes::copy_from_slice(&service)));
            if !forwarded(
                s,
                state,
                ctx,
                REGISTRY_UNAVAILABLE,
                &service,
                line,
                waits_for,
            ) {
                let owner = ctx.owner;
                answer(
                    s,
                    state,
                    owner,
                    Reply::ResolveStart {
                        service: service.clone(),
                    },
                );
                for fields in state.registry.resolve(&service) {
                    let service = service.clone();
                    answer(s, state, owner, Reply::Instance { service, fields });
                }
                answer(s, state, owner, Reply::ResolveEnd { service });
            }
            Flow::Continue
        }
        Request::Services => {
            if !forwarded(
                s,
                state,
                ctx,
                REGISTRY_UNAVAILABLE,
                b"",
                line,
                Some(Pending::Services),
            ) {
                answer(s, state, ctx.owner, Reply::ServicesStart);
                for (service, fields) in state.registry.services() {
                    answer(s, state, ctx.owner, Reply::Service { service, fields });
                }
                answer(s, state, ctx.owner, Reply::ServicesEnd);
            }
            Flow::Continue
        }
        _ => Flow::Continue,
    }
}

/// `REGISTER`: the instance's node is the server its client is connected to (a slave forwards
/// it with `node=<its name>` in the metadata; a client's own `node` is not taken).
fn register(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    service: Bytes,
    endpoint: Bytes,
    meta: Bytes,
) -> Flow {
    let from_slave = ctx.owner.tag != 0;
    let node = match meta_value(&meta, b"node") {
        Some(node) if from_slave => Bytes::copy_from_slice(node),
        _ => s.shared.node.clone(),
    };
    let meta = if from_slave {
        meta
    } else {
        meta_without(&meta, b"node")
    };
    // Forwarded, it carries its node along.
    let mut with_node = meta.to_vec();
    if !from_slave {
        if !with_node.is_empty() {
            with_node.push(b';');
        }
        with_node.extend_from_slice(b"node=");
        with_node.extend_from_slice(&node);
    }
    let up = Request::Register {
        service: service.clone(),
        endpoint: endpoint.clone(),
        meta: Some(Bytes::from(with_node)),
    }
    .to_bytes();
    let up = up.slice(..up.len() - clacks_proto::CRLF.len());
    let waits_for = Some(Pending::Register(Bytes::copy_from_slice(&service)));
    if forwarded(
        s,
        state,
        ctx,
        REGISTRY_UNAVAILABLE,
        &service,
        &up,
        waits_for,
    ) {
        return Flow::Continue;
    }
    let now = s.shared.now();
    match state
        .registry
        .register(ctx.owner, &service, &endpoint, &meta, node, now)
    {
        Ok(registered) => {
            let id = Bytes::from(registered.id.to_string());
            answer(s, state, ctx.owner, Reply::Registered { service, id });
            Stats::bump(&s.shared.stats.registry_registered);
            state.announce_service(&registered.service);
        }
        Err(refusal) => {
            if refusal == Refusal::TooMany {
                Stats::bump(&s.shared.stats.registry_refusals);
                if s.may_log() {
                    tracing::warn!(cid = %s.cid_str(), service = %logged(&service), "REGISTER refused by a limit");
                }
            }
            error(
                s,
                state,
                ctx,
                ClientError::Refused(refusal.token(), &[&service]),
            );
        }
    }
    Flow::Continue
}
