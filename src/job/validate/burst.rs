//! `export.identities`: the row-level-security identities a report is exported as, with the
//! limits the service documents for an `EffectiveIdentity` (specs/PowerBI-CSharp/swagger.json):
//! a user name of at most 256 characters, at most 50 roles, each at most 50 characters and
//! without `,`.

use super::Checker;
use crate::job::Code;
use crate::job::model::EffectiveIdentity;
use crate::job::raw::{RawIdentity, Sp};

const MAX_USERNAME: usize = 256;
const MAX_ROLES: usize = 50;
const MAX_ROLE: usize = 50;

/// The identities of one export (problems recorded, the usable ones kept).
pub(super) fn identities(
    c: &mut Checker<'_>,
    list: &Sp<Vec<Sp<RawIdentity>>>,
) -> Vec<EffectiveIdentity> {
    if list.get().is_empty() {
        c.error(
            Code::EmptyValue,
            list.loc(),
            "`export.identities` is empty",
            "list at least one identity, or leave the key out",
        );
    }
    list.get().iter().map(|i| identity(c, i.get())).collect()
}

fn identity(c: &mut Checker<'_>, raw: &RawIdentity) -> EffectiveIdentity {
    let username = c.non_empty(&raw.username, "username");
    if username.chars().count() > MAX_USERNAME {
        c.error(
            Code::OutOfRange,
            raw.username.loc(),
            format!("`username` is longer than {MAX_USERNAME} characters"),
            "too long",
        );
    }
    let roles_written = raw.roles.as_deref().unwrap_or_default();
    if roles_written.len() > MAX_ROLES {
        c.error(
            Code::OutOfRange,
            roles_written[MAX_ROLES].loc(),
            format!("an identity has at most {MAX_ROLES} roles"),
            "one too many",
        );
    }
    let mut roles = Vec::new();
    for r in roles_written {
        let role = c.non_empty(r, "role");
        if role.contains(',') {
            c.error(
                Code::InvalidValue,
                r.loc(),
                "a role name cannot contain `,`",
                "`,` here",
            );
        } else if role.chars().count() > MAX_ROLE {
            c.error(
                Code::OutOfRange,
                r.loc(),
                format!("a role name is at most {MAX_ROLE} characters"),
                "too long",
            );
        }
        roles.push(role);
    }
    let datasets = raw
        .datasets
        .iter()
        .flatten()
        .map(|d| c.non_empty(d, "dataset"))
        .collect();
    EffectiveIdentity {
        username,
        roles,
        datasets,
    }
}
