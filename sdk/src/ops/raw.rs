//! Raw SQL with everything a typed operation would declare: the inverse, the
//! objects, the lock, the phase, and the effect on the catalog model.

use crate::catalog::Catalog;
use crate::step::{Ctx, Phase, PlanError};

use super::RawSqlDef;

/// Plans the statement one way: `up` with `effect`, or `down` with `undo`.
pub fn plan(r: &RawSqlDef, up: bool, model: &mut Catalog, ctx: &mut Ctx) -> Result<(), PlanError> {
    let (sql, apply, way) = if up {
        (r.up, r.effect, "")
    } else {
        (r.down, r.undo, "undo: ")
    };
    ctx.push(
        if r.transactional {
            Phase::Transaction
        } else {
            Phase::After
        },
        r.lock,
        &r.objects,
        sql.to_string(),
        format!("{way}{}", r.summary),
    );
    apply(model);
    Ok(())
}
