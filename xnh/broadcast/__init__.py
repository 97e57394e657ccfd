"""Broadcasts and the outbound worker: campaigns (audience, template, schedule, send window), the worker
that sends what the outbox holds through the provider modules (xnh/providers/), what each answer does
(outcomes.py) and whether anything is sending (health.py).

    from xnh.broadcast import campaigns, worker
    cid = campaigns.create(db, name="缴费提醒", audience="unpaid=2027 township=东山镇",
                           text="{{ name }}您好,{{ year }}年度新农合请于{{ deadline }}前缴费", actor="clerk1")
    campaigns.preview(db, cid, settings); campaigns.send(db, cid, actor="clerk1")
    worker.run(settings, until_idle=True)
"""
