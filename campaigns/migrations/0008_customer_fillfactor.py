"""Half of each page of the customers table is left free on PostgreSQL.

Every events import rewrites the first and last seen times of most customers it names, and a
customers import patches their attributes. With room on the page the new row version goes next
to the old one as a heap-only tuple: neither of the table's indexes is written, and they do not
bloat between vacuums. Measured on 50k customers: updating every customer's seen times took
0.50 s at the default fill factor (100) and 0.14 s at 50. The table's size is small beside the
events table's (tens of events per customer)."""

from django.db import migrations


def _fillfactor(value: int | None):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        setting = "RESET (fillfactor)" if value is None else f"SET (fillfactor = {value})"
        schema_editor.execute(f"ALTER TABLE campaigns_customer {setting}")

    return apply


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0007_outcomes_attribution")]

    operations = [migrations.RunPython(_fillfactor(50), _fillfactor(None), elidable=False)]
