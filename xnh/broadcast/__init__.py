"""Broadcasts and the outbound worker: campaigns (audience, template, schedule, send window), the worker
that sends what the outbox holds, and the table of Twilio's error codes.

    from xnh.broadcast import campaigns, worker
    cid = campaigns.create(db, name="缴费提醒", audience="unpaid=2027 township=东山镇",
                           text="{{ name }}您好,{{ year }}年度新农合请于{{ deadline }}前缴费", actor="clerk1")
    campaigns.preview(db, cid); campaigns.send(db, cid, actor="clerk1")
    worker.run(db_path, until_idle=True)
"""
