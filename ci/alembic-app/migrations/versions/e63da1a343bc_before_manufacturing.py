"""FastApiv1.6's head before the manufacturing change (stand-in: empty)

Revision ID: e63da1a343bc
Revises: f178178734f5
"""

revision = 'e63da1a343bc'
down_revision = 'f178178734f5'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
