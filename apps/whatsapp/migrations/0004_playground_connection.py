from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('whatsapp', '0003_connection_allowed_contacts'),
    ]

    operations = [
        migrations.AlterField(
            model_name='whatsappconnection',
            name='environment',
            field=models.CharField(choices=[('development', 'Development'), ('production', 'Production'), ('playground', 'Playground')], default='development', max_length=16),
        ),
        migrations.AddConstraint(
            model_name='whatsappconnection',
            constraint=models.UniqueConstraint(condition=models.Q(('environment', 'playground')), fields=('agent',), name='connection_one_playground_per_agent'),
        ),
    ]
