from services.common.migrate import run_migrations
from services.offers.models import Base

run_migrations(Base.metadata)
