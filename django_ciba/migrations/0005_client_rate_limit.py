# Per-client rate limits, the "user prompted" flag of requests and the index the abuse controls
# count a user's recent prompts with.

from django.conf import settings
from django.db import migrations, models
from oauth2_provider.settings import oauth2_settings


class Migration(migrations.Migration):
    dependencies = [
        ("django_ciba", "0004_device_policies_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        migrations.swappable_dependency(oauth2_settings.APPLICATION_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="cibaclient",
            name="rate_limit_requests",
            field=models.PositiveIntegerField(
                blank=True,
                help_text=(
                    "At most this many bc-authorize requests per rate limit period. Empty: "
                    "CIBA['CLIENT_RATE_LIMIT'] (off by default); 0: no limit for this client."
                ),
                null=True,
                verbose_name="rate limit: requests",
            ),
        ),
        migrations.AddField(
            model_name="cibaclient",
            name="rate_limit_period",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="The period of this client's rate limit, in seconds.",
                null=True,
                verbose_name="rate limit: period (s)",
            ),
        ),
        migrations.AddField(
            model_name="authenticationrequest",
            name="asked_user",
            field=models.BooleanField(
                default=False,
                help_text="The user's authentication device was asked; False when a decision policy decided.",
                verbose_name="user prompted",
            ),
        ),
        migrations.AddField(
            model_name="authenticationrequest",
            name="approved_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the request was approved, by anyone; kept if the approval is later undone.",
                null=True,
                verbose_name="approved at",
            ),
        ),
        migrations.AddIndex(
            model_name="authenticationrequest",
            index=models.Index(fields=["user", "client", "created_at"], name="ciba_authreq_user_client"),
        ),
    ]
