//! A search across resource types: `POST /scim/v2/.search` at the SCIM
//! root (RFC 7644 §3.4.3). The filter is evaluated over users and groups
//! alike (an attribute a resource does not have matches nothing, so
//! `userName eq "x"` finds only users and `meta.resourceType eq "Group"`
//! only groups); the results are the users, oldest first, then the groups,
//! oldest first, paged as one list. `sortBy` is refused here: users and
//! groups share too few attributes for one order to mean much, and the
//! per-type searches sort.

use super::error::ScimError;
use super::filter::Filter;
use super::list::{Listing, Page};
use super::service::Scim;

impl Scim<'_> {
    /// One page of the users and groups matching `filter`, with the number
    /// that match in all.
    ///
    /// # Errors
    /// Store errors.
    pub fn search_all(&self, filter: Option<&Filter>, page: Page) -> Result<Listing, ScimError> {
        let users = self.list_users(filter, None, page)?;
        // The groups come after every user: their page starts where the
        // users' ends, and fills what room the users left.
        let groups = self.list_groups(
            filter,
            None,
            Page {
                start: page.start.max(1).saturating_sub(users.total).max(1),
                count: page.count.saturating_sub(users.resources.len()),
            },
        )?;
        let mut resources = users.resources;
        resources.extend(groups.resources);
        Ok(Listing {
            total: users.total + groups.total,
            resources,
        })
    }
}

/// Refuses `sortBy` in a search across resource types.
///
/// # Errors
/// 400 `invalidValue` naming the per-type searches.
pub fn refuse_sort(query: &std::collections::HashMap<String, String>) -> Result<(), ScimError> {
    if query.keys().any(|k| k.eq_ignore_ascii_case("sortBy")) {
        return Err(ScimError::invalid_value(
            "sortBy is not supported in a search across resource types; sort with POST /Users/.search or /Groups/.search",
        ));
    }
    Ok(())
}
