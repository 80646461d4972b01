import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0010_playground_threads_on_connections'),
        ('whatsapp', '0004_playground_connection'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='thread',
            name='thread_unique_playground',
        ),
        migrations.RemoveField(
            model_name='thread',
            name='playground_agent',
        ),
        migrations.AlterField(
            model_name='message',
            name='connection',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='whatsapp.whatsappconnection'),
        ),
        migrations.AlterField(
            model_name='thread',
            name='connection',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='threads', to='whatsapp.whatsappconnection'),
        ),
    ]
