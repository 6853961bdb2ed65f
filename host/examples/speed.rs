//! How fast the plugin path is, measured, not asserted:
//!
//! ```text
//! cargo run --release -p wasmig --example speed [-- --calls 1000 --runs 15 --plugin PATH]
//! ```
//!
//! Prints the bundled plugin's size; a cold compile (`Component::new`, no
//! cache); a load through an empty cache dir (compile + write) and through the
//! warm on-disk cache; a warm instantiation; the median warm `revisions` and
//! `plan` (empty -> head) calls of a reused instance; the sandbox check of the
//! head plan; and `wasmig sql` end to end as a process against
//! `alembic upgrade head --sql` on the same chain (the seed's Alembic script on
//! top of an empty `erp_base` revision), measured alternately in the same run,
//! as a ratio of medians. Alembic and SQLAlchemy come from PyPI into
//! `target/alembic-venv` (`ci/alembic-venv.sh`); without Python that part is
//! skipped with a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmig::component::{BUNDLED, Catalog, PlanOptions};
use wasmig::sandbox::{Allowances, check_plan};
use wasmig::{Limits, Plugin};

const HEAD: &str = "manufacturing_module_v1";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let calls = opt("--calls", 1000);
    // Another build of the plugin (say, a different opt-level) instead of the bundled one.
    let other_path = args
        .iter()
        .position(|a| a == "--plugin")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let other = other_path.as_ref().map(std::fs::read).transpose()?;
    let wasm: &[u8] = other.as_deref().unwrap_or(BUNDLED);
    let runs = opt("--runs", 15);
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for meaningful numbers");
    }
    let tmp = tempfile::tempdir()?;
    let row = |name: &str, value: String| println!("{name:<70} {value}");
    println!("{:<70} value", "measurement");
    println!("{}", "-".repeat(96));
    row(
        if other.is_some() {
            "plugin size (--plugin)"
        } else {
            "plugin size (bundled component)"
        },
        format!(
            "{} bytes ({:.0} KiB)",
            wasm.len(),
            wasm.len() as f64 / 1024.0
        ),
    );

    // Cold compile: Cranelift on the component, no cache involved.
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    let engine = wasmtime::Engine::new(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cold = median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let c = wasmtime::component::Component::new(&engine, wasm)
                    .expect("the bundled plugin compiles");
                let d = t.elapsed();
                drop(c);
                d
            })
            .collect(),
    );
    row("cold compile (Component::new, median of 3)", ms(cold));

    // Plugin::from_bytes through an empty cache dir (compile + serialize + write), then through the filled one.
    let limits = Limits::default();
    let mut first = Vec::new();
    for i in 0..3 {
        set_cache(&tmp.path().join(format!("cold-{i}")));
        let t = Instant::now();
        drop(Plugin::from_bytes(wasm, "bundled".into(), limits.clone())?);
        first.push(t.elapsed());
    }
    row(
        "load, empty cache dir (compile + write cache, median of 3)",
        ms(median(first)),
    );
    let warm_dir = tmp.path().join("cold-0");
    set_cache(&warm_dir);
    let loads = (0..20)
        .map(|_| {
            let t = Instant::now();
            drop(Plugin::from_bytes(wasm, "bundled".into(), limits.clone()).expect("loads"));
            t.elapsed()
        })
        .collect();
    row(
        "load from the on-disk cache (Plugin::from_bytes, median of 20)",
        ms(median(loads)),
    );

    // Warm instantiation: a new store and instance from the cached, pre-linked component.
    let cwasm = std::fs::read_dir(&warm_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("the cache holds the compiled plugin");
    // SAFETY: written by Component::serialize of the same wasmtime with the same configuration, just now.
    let component = unsafe { wasmtime::component::Component::deserialize_file(&engine, &cwasm) }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let linker: wasmtime::component::Linker<()> = wasmtime::component::Linker::new(&engine);
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let inst = (0..200)
        .map(|_| {
            let t = Instant::now();
            let mut store = wasmtime::Store::new(&engine, ());
            store.set_epoch_deadline(100);
            pre.instantiate(&mut store).expect("instantiates");
            let d = t.elapsed();
            drop(store);
            d
        })
        .collect();
    row(
        "warm instantiate (Store::new + instantiate, median of 200)",
        us(median(inst)),
    );
    let fresh = (0..20)
        .map(|_| {
            let p = Plugin::from_bytes(wasm, "bundled".into(), limits.clone()).expect("loads");
            let t = Instant::now();
            p.revisions().expect("revisions");
            t.elapsed()
        })
        .collect();
    row(
        "first call of a loaded plugin (instantiate + revisions, median of 20)",
        us(median(fresh)),
    );

    // Warm calls on the reused instance.
    let plugin = Plugin::from_bytes(wasm, "bundled".into(), limits)?;
    let empty = Catalog {
        tables: vec![],
        indexes: vec![],
        constraints: vec![],
        enums: vec![],
    };
    let options = PlanOptions {
        resume: false,
        online: None,
        allow_data_loss: false,
        schema: None,
    };
    plugin.revisions()?;
    let revisions = time_n(calls, || {
        plugin.revisions().expect("revisions");
    });
    let plan = time_n(calls, || {
        plugin
            .plan(None, Some(HEAD), &empty, options.clone())
            .expect("plan")
            .expect("plans");
    });
    let both = time_n(calls, || {
        plugin.revisions().expect("revisions");
        plugin
            .plan(None, Some(HEAD), &empty, options.clone())
            .expect("plan")
            .expect("plans");
    });
    row(
        &format!("warm revisions (median of {calls})"),
        us(median(revisions)),
    );
    row(
        &format!("warm plan empty -> head (median of {calls})"),
        us(median(plan)),
    );
    row(
        &format!("warm revisions + plan, the `list + plan` path (median of {calls})"),
        us(median(both.clone())),
    );
    row(
        &format!("  p90 of the same {calls}"),
        us(percentile(both, 0.9)),
    );
    // The same plan with the head catalog as input: what the canonical ABI costs for a full catalog.
    let head = plugin
        .plan(None, Some(HEAD), &empty, options.clone())?
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let noop = time_n(calls, || {
        plugin
            .plan(Some(HEAD), Some(HEAD), &head.expected, options.clone())
            .expect("plan")
            .expect("plans");
    });
    row(
        &format!("warm plan head -> head with the head catalog in (median of {calls})"),
        us(median(noop)),
    );
    let lints = time_n(calls / 10, || {
        for s in &head.steps {
            plugin.validate(&s.sql, s.transactional).expect("validate");
        }
    });
    row(
        &format!(
            "  of which linting: validate() of each of the {} steps (median of {})",
            head.steps.len(),
            calls / 10
        ),
        us(median(lints)),
    );
    let checks = time_n(calls, || {
        check_plan(&head.steps, &Allowances::none()).expect("the head plan passes")
    });
    row(
        &format!(
            "sandbox check of the {}-step head plan (median of {calls})",
            head.steps.len()
        ),
        us(median(checks)),
    );

    // End to end: processes, alternately, same run.
    match (wasmig_bin(), alembic(tmp.path())) {
        (Ok(bin), Ok(alembic)) => {
            let cache = tmp.path().join("cli-cache");
            let wasmig_cmd = |full: bool| {
                let mut c = Command::new(&bin);
                c.arg("sql")
                    .env("WASMIG_CACHE_DIR", &cache)
                    .env_remove("DATABASE_URL")
                    .env_remove("WASMIG_PLUGIN");
                if let Some(p) = &other_path {
                    c.arg("--plugin").arg(p);
                }
                if !full {
                    c.args(["--from", "erp_base"]);
                }
                c
            };
            // Warm the compiled-code cache (the first run compiles) and check both work.
            let ours = output(&mut wasmig_cmd(false))?;
            output(&mut wasmig_cmd(true))?;
            let theirs = output(&mut alembic.command())?;
            let (mut w, mut wf, mut a) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                w.push(run(&mut wasmig_cmd(false))?);
                a.push(run(&mut alembic.command())?);
                wf.push(run(&mut wasmig_cmd(true))?);
            }
            let (w, wf, a) = (median(w), median(wf), median(a));
            row(
                &format!("`wasmig sql --from erp_base` process (median of {runs})"),
                format!("{} ({} bytes of SQL)", ms(w), ours.len()),
            );
            row(
                &format!("`wasmig sql` empty -> head process (median of {runs})"),
                ms(wf),
            );
            row(
                &format!("`alembic upgrade head --sql` process (median of {runs})"),
                format!(
                    "{} ({} bytes of SQL; alembic {})",
                    ms(a),
                    theirs.len(),
                    alembic.version
                ),
            );
            row(
                "ratio alembic / wasmig (same revision)",
                format!("{:.1}x", a.as_secs_f64() / w.as_secs_f64()),
            );
            row(
                "ratio alembic / wasmig (wasmig doing the whole chain)",
                format!("{:.1}x", a.as_secs_f64() / wf.as_secs_f64()),
            );
        }
        (Err(e), _) | (_, Err(e)) => println!("(end-to-end comparison skipped: {e:#})"),
    }
    Ok(())
}

fn set_cache(dir: &Path) {
    // SAFETY: no other thread of this program reads the environment.
    unsafe { std::env::set_var("WASMIG_CACHE_DIR", dir) };
}

fn time_n(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 0.5)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn output(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let o = cmd.stderr(Stdio::piped()).output()?;
    anyhow::ensure!(
        o.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(o.stdout)
}

fn run(cmd: &mut Command) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let d = t.elapsed();
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok(d)
}

/// The `wasmig` binary of this profile, built if missing.
fn wasmig_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target dir"))?;
    let bin = dir.join("wasmig");
    if !bin.exists() {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["build", "-p", "wasmig", "--bin", "wasmig"]);
        if !cfg!(debug_assertions) {
            c.arg("--release");
        }
        let ok = c
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        anyhow::ensure!(
            ok && bin.exists(),
            "{} is missing: run `cargo build --release -p wasmig` first",
            bin.display()
        );
    }
    Ok(bin)
}

struct Alembic {
    exe: PathBuf,
    dir: PathBuf,
    version: String,
}

impl Alembic {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.current_dir(&self.dir)
            .args(["-c", "alembic.ini", "upgrade", "head", "--sql"]);
        c
    }
}

/// A minimal offline Alembic environment in `tmp` with the seed's script, and the venv's `alembic`.
fn alembic(tmp: &Path) -> anyhow::Result<Alembic> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let out = Command::new(root.join("ci/alembic-venv.sh"))
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ci/alembic-venv.sh failed (python3 with venv and PyPI access are needed)"
    );
    let python = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    let exe = python.with_file_name("alembic");
    let dir = tmp.join("alembic");
    std::fs::create_dir_all(dir.join("versions"))?;
    std::fs::write(
        dir.join("alembic.ini"),
        "[alembic]\nscript_location = %(here)s\nsqlalchemy.url = postgresql://wasmig@localhost/wasmig\n",
    )?;
    std::fs::write(dir.join("env.py"), ENV_PY)?;
    std::fs::write(dir.join("versions/erp_base.py"), BASE_PY)?;
    std::fs::write(dir.join("versions/manufacturing_module_v1.py"), SEED_PY)?;
    let v = Command::new(&python)
        .args(["-c", "import alembic; print(alembic.__version__)"])
        .output()?;
    Ok(Alembic {
        exe,
        dir,
        version: String::from_utf8_lossy(&v.stdout).trim().to_string(),
    })
}

const ENV_PY: &str = r#"from alembic import context

# Offline only: render SQL for PostgreSQL, never connect.
context.configure(
    url=context.config.get_main_option("sqlalchemy.url"),
    target_metadata=None,
    literal_binds=True,
    dialect_opts={"paramstyle": "named"},
)
with context.begin_transaction():
    context.run_migrations()
"#;

/// The base the seed's script revises: the existing FastApiv1.6 schema, which Alembic does not create here.
const BASE_PY: &str = r#""""erp_base: the existing FastApiv1.6 schema (created outside this chain)."""
revision = "erp_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
"#;

/// The seed's Alembic template (manufacturing-migration-guide.md), verbatim but for `down_revision`.
const SEED_PY: &str = r#""""Add manufacturing module enhancements

Revision ID: manufacturing_module_v1
Revises: erp_base
Create Date: 2025-10-11 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers
revision = 'manufacturing_module_v1'
down_revision = 'erp_base'
branch_labels = None
depends_on = None


def upgrade():
    # 1. Enhance manufacturing_orders table
    op.add_column('manufacturing_orders', sa.Column('assigned_operator', sa.String(255), nullable=True))
    op.add_column('manufacturing_orders', sa.Column('assigned_supervisor', sa.String(255), nullable=True))
    op.add_column('manufacturing_orders', sa.Column('machine_id', sa.String(100), nullable=True))
    op.add_column('manufacturing_orders', sa.Column('workstation_id', sa.String(100), nullable=True))
    op.add_column('manufacturing_orders', sa.Column('estimated_labor_hours', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('actual_labor_hours', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('estimated_setup_time', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('estimated_run_time', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('actual_setup_time', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('actual_run_time', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('completion_percentage', sa.Float(), server_default='0.0'))
    op.add_column('manufacturing_orders', sa.Column('last_updated_at', sa.DateTime(timezone=True), nullable=True))

    # Indexes for manufacturing_orders
    op.create_index('idx_mo_operator', 'manufacturing_orders', ['organization_id', 'assigned_operator'])
    op.create_index('idx_mo_machine', 'manufacturing_orders', ['organization_id', 'machine_id'])
    op.create_index('idx_mo_workstation', 'manufacturing_orders', ['organization_id', 'workstation_id'])
    op.create_index('idx_mo_completion', 'manufacturing_orders', ['organization_id', 'completion_percentage'])

    # 2. Create bom_alternate_components table
    op.create_table(
        'bom_alternate_components',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('primary_component_id', sa.Integer(), nullable=False),
        sa.Column('alternate_item_id', sa.Integer(), nullable=False),
        sa.Column('quantity_required', sa.Float(), nullable=False),
        sa.Column('unit', sa.String(50), nullable=False),
        sa.Column('unit_cost', sa.Float(), server_default='0.0'),
        sa.Column('cost_difference', sa.Float(), server_default='0.0'),
        sa.Column('preference_rank', sa.Integer(), server_default='1'),
        sa.Column('is_preferred', sa.Boolean(), server_default='false'),
        sa.Column('min_order_quantity', sa.Float(), server_default='0.0'),
        sa.Column('lead_time_days', sa.Integer(), server_default='0'),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP')),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['primary_component_id'], ['bom_components.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['alternate_item_id'], ['products.id']),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_bom_alt_org_primary', 'bom_alternate_components', ['organization_id', 'primary_component_id'])
    op.create_index('idx_bom_alt_org_item', 'bom_alternate_components', ['organization_id', 'alternate_item_id'])
    op.create_index('idx_bom_alt_preference', 'bom_alternate_components', ['primary_component_id', 'preference_rank'])

    # 3. Create bom_revisions table
    op.create_table(
        'bom_revisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organization_id', sa.Integer(), nullable=False),
        sa.Column('bom_id', sa.Integer(), nullable=False),
        sa.Column('revision_number', sa.String(50), nullable=False),
        sa.Column('revision_date', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP')),
        sa.Column('previous_version', sa.String(50), nullable=True),
        sa.Column('new_version', sa.String(50), nullable=False),
        sa.Column('change_type', sa.String(50), nullable=False),
        sa.Column('change_description', sa.Text(), nullable=False),
        sa.Column('change_reason', sa.Text(), nullable=True),
        sa.Column('change_requested_by', sa.Integer(), nullable=True),
        sa.Column('change_approved_by', sa.Integer(), nullable=True),
        sa.Column('approval_date', sa.DateTime(timezone=True), nullable=True),
        sa.Column('approval_status', sa.String(20), server_default='pending'),
        sa.Column('cost_impact', sa.Float(), server_default='0.0'),
        sa.Column('affected_orders_count', sa.Integer(), server_default='0'),
        sa.Column('implementation_date', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP')),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id']),
        sa.ForeignKeyConstraint(['bom_id'], ['bill_of_materials.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['change_requested_by'], ['users.id']),
        sa.ForeignKeyConstraint(['change_approved_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_bom_rev_org_bom', 'bom_revisions', ['organization_id', 'bom_id'])
    op.create_index('idx_bom_rev_org_date', 'bom_revisions', ['organization_id', 'revision_date'])
    op.create_index('idx_bom_rev_status', 'bom_revisions', ['approval_status'])
    op.create_index('idx_bom_rev_version', 'bom_revisions', ['bom_id', 'new_version'])


def downgrade():
    # Drop bom_revisions table
    op.drop_index('idx_bom_rev_version', table_name='bom_revisions')
    op.drop_index('idx_bom_rev_status', table_name='bom_revisions')
    op.drop_index('idx_bom_rev_org_date', table_name='bom_revisions')
    op.drop_index('idx_bom_rev_org_bom', table_name='bom_revisions')
    op.drop_table('bom_revisions')

    # Drop bom_alternate_components table
    op.drop_index('idx_bom_alt_preference', table_name='bom_alternate_components')
    op.drop_index('idx_bom_alt_org_item', table_name='bom_alternate_components')
    op.drop_index('idx_bom_alt_org_primary', table_name='bom_alternate_components')
    op.drop_table('bom_alternate_components')

    # Remove manufacturing_orders enhancements
    op.drop_index('idx_mo_completion', table_name='manufacturing_orders')
    op.drop_index('idx_mo_workstation', table_name='manufacturing_orders')
    op.drop_index('idx_mo_machine', table_name='manufacturing_orders')
    op.drop_index('idx_mo_operator', table_name='manufacturing_orders')

    op.drop_column('manufacturing_orders', 'last_updated_at')
    op.drop_column('manufacturing_orders', 'completion_percentage')
    op.drop_column('manufacturing_orders', 'actual_run_time')
    op.drop_column('manufacturing_orders', 'actual_setup_time')
    op.drop_column('manufacturing_orders', 'estimated_run_time')
    op.drop_column('manufacturing_orders', 'estimated_setup_time')
    op.drop_column('manufacturing_orders', 'actual_labor_hours')
    op.drop_column('manufacturing_orders', 'estimated_labor_hours')
    op.drop_column('manufacturing_orders', 'workstation_id')
    op.drop_column('manufacturing_orders', 'machine_id')
    op.drop_column('manufacturing_orders', 'assigned_supervisor')
    op.drop_column('manufacturing_orders', 'assigned_operator')
"#;
