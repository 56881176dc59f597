//! Which route owns which namespace, per sink.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::Namespace;
use crate::rejection::Rejection;

/// The identity of one route: made once per
/// [`WebhookLayer`](crate::WebhookLayer) and shared by its clones. Only its
/// address matters.
#[derive(Debug)]
pub(crate) struct RouteTag {
    _private: u8,
}

impl RouteTag {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self { _private: 0 })
    }
}

/// A sink's record of the route that owns each namespace it has seen.
///
/// A second, distinct route presenting a namespace whose owner is still
/// alive is refused: two senders on one store would otherwise share event
/// ids (one could pre-empt the other's). A route that was dropped (a router
/// rebuilt on reload) hands its namespaces to the next one.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    owners: Mutex<HashMap<Namespace, Weak<RouteTag>>>,
}

impl Routes {
    pub(crate) fn check(&self, namespace: &Namespace, route: &Arc<RouteTag>) -> Result<(), Rejection> {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match owners.get(namespace) {
            Some(owner) if owner.as_ptr() == Arc::as_ptr(route) => Ok(()),
            Some(owner) if owner.strong_count() > 0 => {
                tracing::error!(
                    %namespace,
                    "two routes share this namespace on one store; give each route its own \
                     with WebhookLayer::namespace"
                );
                Err(Rejection::Misconfigured {
                    reason: "two routes share this namespace on one store",
                })
            }
            _ => {
                owners.insert(namespace.clone(), Arc::downgrade(route));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_live_route_is_refused_and_a_dropped_one_hands_over() {
        let routes = Routes::default();
        let namespace = Namespace::from_static("github");
        let first = RouteTag::new();
        assert!(routes.check(&namespace, &first).is_ok());
        assert!(routes.check(&namespace, &first.clone()).is_ok());
        let second = RouteTag::new();
        assert!(routes.check(&namespace, &second).is_err());
        assert!(routes.check(&Namespace::from_static("other"), &second).is_ok());
        drop(first);
        assert!(routes.check(&namespace, &second).is_ok());
    }
}
