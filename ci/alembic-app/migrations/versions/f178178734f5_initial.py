"""FastApiv1.6's first revision (stand-in: the schema comes from fastapi-before.sql)

Revision ID: f178178734f5
Revises:
"""

revision = 'f178178734f5'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
