from services.common.migrate import run_migrations
from services.matching.models import Base

run_migrations(Base.metadata)
