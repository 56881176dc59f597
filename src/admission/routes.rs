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

/// Which route owns each namespace of each store, process-wide.
///
/// A second, distinct route presenting a namespace whose owner is still
/// alive on the same store is refused: two senders on one store would
/// otherwise share event ids (one could pre-empt the other's). A route that
/// was dropped (a router rebuilt on reload) hands its namespaces to the next
/// one. Stores are told apart by the address of their shared allocation: a
/// live route keeps its store alive, so an address is reused only once the
/// routes that used it are gone.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    owners: Mutex<HashMap<(usize, Namespace), Weak<RouteTag>>>,
}

static ROUTES: std::sync::LazyLock<Routes> = std::sync::LazyLock::new(Routes::default);

impl Routes {
    /// Checks that `route` may use `namespace` on the store at `store`
    /// (any pointer that identifies it, such as `Arc::as_ptr`).
    pub(crate) fn check<T: ?Sized>(
        store: *const T,
        namespace: &Namespace,
        route: &Arc<RouteTag>,
    ) -> Result<(), Rejection> {
        ROUTES.check_in(store.cast::<()>() as usize, namespace, route)
    }

    fn check_in(
        &self,
        store: usize,
        namespace: &Namespace,
        route: &Arc<RouteTag>,
    ) -> Result<(), Rejection> {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (store, namespace.clone());
        match owners.get(&key) {
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
                // A new owner: forget the routes that are gone meanwhile.
                owners.retain(|_, owner| owner.strong_count() > 0);
                owners.insert(key, Arc::downgrade(route));
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
        assert!(routes.check_in(1, &namespace, &first).is_ok());
        assert!(routes.check_in(1, &namespace, &first.clone()).is_ok());
        let second = RouteTag::new();
        assert!(routes.check_in(1, &namespace, &second).is_err());
        assert!(
            routes.check_in(2, &namespace, &second).is_ok(),
            "another store"
        );
        assert!(
            routes
                .check_in(1, &Namespace::from_static("other"), &second)
                .is_ok()
        );
        drop(first);
        assert!(routes.check_in(1, &namespace, &second).is_ok());
    }
}
