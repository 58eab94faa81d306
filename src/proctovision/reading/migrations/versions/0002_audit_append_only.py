"""audit_events becomes append-only in the database itself: UPDATE and DELETE are refused by a trigger

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{action.lower()} BEFORE {action} ON audit_events "
                       "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")
    else:
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    else:
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
