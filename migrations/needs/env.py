from services.common.migrate import run_migrations
from services.needs.models import Base

run_migrations(Base.metadata)
