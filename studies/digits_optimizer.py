"""Does Adam beat SGD with momentum on a small MLP for handwritten digits, at a 1,500-step budget?

The playbook's question shape: the optimizer is *scientific* (what we compare), the learning
rate, momentum / beta1 and weight decay are *nuisance* (re-tuned for each optimizer so the
comparison is fair; SGD's momentum is not Adam's beta1), and the batch size, step budget and
width are *fixed* (held constant, recorded as caveats).

Data: scikit-learn's bundled digits (1,797 8x8 images), no download.
Run it:  hpo run studies/digits_optimizer.py --workers 2
"""

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific, uniform


def train(config, ctx):
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)  # one core per worker; several workers share the machine
    torch.manual_seed(ctx.seed)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=0.25, random_state=0, stratify=y
    )
    # Small data lives on the device as tensors: no DataLoader overhead.
    x_train, x_val = (torch.tensor(a, dtype=torch.float32, device=ctx.device) for a in (x_train, x_val))
    y_train, y_val = (torch.tensor(a, device=ctx.device) for a in (y_train, y_val))

    width = config["width"]
    model = torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    ).to(ctx.device)
    if config["optimizer"] == "sgd_momentum":
        optimizer = torch.optim.SGD(model.parameters(), lr=config["learning_rate"],
                                    momentum=config["momentum"], weight_decay=config["weight_decay"])
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"],
                                      betas=(config["beta1"], 0.999),
                                      weight_decay=config["weight_decay"])

    generator = torch.Generator(device="cpu").manual_seed(ctx.seed)
    best = 1.0
    for step in range(1, config["max_train_steps"] + 1):
        batch = torch.randint(len(x_train), (config["batch_size"],), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % config["eval_every"] == 0:  # evaluate at fixed step intervals, never by time
            with torch.no_grad():
                val_error = (model(x_val).argmax(1) != y_val).float().mean().item()
            if not torch.isfinite(loss):
                return float("nan")  # diverged: recorded as infeasible, not as a bad score
            best = min(best, val_error)  # retrospective best checkpoint
            ctx.report(step, val_error)
    return best


study = Study(
    name="digits-optimizer-v1",
    goal="Does Adam beat SGD with momentum on a 1-hidden-layer MLP for digits at 1,500 steps?",
    metric="val_error",
    direction="minimize",
    space={
        "optimizer": scientific(choice("sgd_momentum", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
        "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
        "weight_decay": nuisance(log_uniform(1e-6, 1e-2)),
        "batch_size": fixed(64),
        "max_train_steps": fixed(1500),
        "eval_every": fixed(100),
        "width": fixed(128),
    },
    objective=train,
    trials_per_value=12,
    phase="explore",
    seed=0,
)
