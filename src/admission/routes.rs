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
/// one. Stores are told apart by the address of their shared allocation; an
/// owner also holds a weak reference to its store, which keeps that address
/// from being reused by another store while the entry stands, and a store
/// that was dropped hands its namespaces over too (a layer may outlive the
/// store it was first used with).
#[derive(Debug, Default)]
pub(crate) struct Routes {
    owners: Mutex<HashMap<(usize, Namespace), Owner>>,
}

/// A namespace's owner on one store: the route, and whether the store lives.
struct Owner {
    route: Weak<RouteTag>,
    store_alive: Box<dyn Fn() -> bool + Send>,
}

impl Owner {
    fn alive(&self) -> bool {
        self.route.strong_count() > 0 && (self.store_alive)()
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("alive", &self.alive())
            .finish()
    }
}

static ROUTES: std::sync::LazyLock<Routes> = std::sync::LazyLock::new(Routes::default);

impl Routes {
    /// Checks that `route` may use `namespace` on `store`.
    pub(crate) fn check<T: ?Sized + Send + Sync + 'static>(
        store: &Arc<T>,
        namespace: &Namespace,
        route: &Arc<RouteTag>,
    ) -> Result<(), Rejection> {
        ROUTES.check_in(store, namespace, route)
    }

    fn check_in<T: ?Sized + Send + Sync + 'static>(
        &self,
        store: &Arc<T>,
        namespace: &Namespace,
        route: &Arc<RouteTag>,
    ) -> Result<(), Rejection> {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (Arc::as_ptr(store).cast::<()>() as usize, namespace.clone());
        match owners.get(&key) {
            Some(owner) if owner.route.as_ptr() == Arc::as_ptr(route) => Ok(()),
            Some(owner) if owner.alive() => {
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
                owners.retain(|_, owner| owner.alive());
                let weak = Arc::downgrade(store);
                let owner = Owner {
                    route: Arc::downgrade(route),
                    store_alive: Box::new(move || weak.strong_count() > 0),
                };
                owners.insert(key, owner);
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
        let (store, other_store) = (Arc::new(1_u8), Arc::new(2_u8));
        let namespace = Namespace::from_static("github");
        let first = RouteTag::new();
        assert!(routes.check_in(&store, &namespace, &first).is_ok());
        assert!(routes.check_in(&store, &namespace, &first.clone()).is_ok());
        let second = RouteTag::new();
        assert!(routes.check_in(&store, &namespace, &second).is_err());
        assert!(
            routes.check_in(&other_store, &namespace, &second).is_ok(),
            "another store"
        );
        assert!(
            routes
                .check_in(&store, &Namespace::from_static("other"), &second)
                .is_ok()
        );
        drop(first);
        assert!(routes.check_in(&store, &namespace, &second).is_ok());
    }

    /// A layer may outlive the store it was first used with: once that
    /// store is gone, its namespaces are free for another route on a new
    /// store, even one that the allocator would place at the same address.
    #[test]
    fn a_dropped_store_hands_its_namespaces_over() {
        let routes = Routes::default();
        let namespace = Namespace::from_static("generic");
        let kept_route = RouteTag::new();
        let store = Arc::new(1_u8);
        assert!(routes.check_in(&store, &namespace, &kept_route).is_ok());
        drop(store);
        let new_store = Arc::new(2_u8);
        let new_route = RouteTag::new();
        assert!(routes.check_in(&new_store, &namespace, &new_route).is_ok());
        assert!(
            routes
                .check_in(&new_store, &namespace, &kept_route)
                .is_err(),
            "the new route owns it now"
        );
    }
}
