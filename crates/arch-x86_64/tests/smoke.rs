use arch_x86_64::X86_64;
use forkmodel::*;

#[test]
fn smoke() {
    for order in [0, 4, 9] {
        for s in StrategyId::ALL {
            let l = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
            let mut m = Model::<X86_64>::with_layout(&l, ForkConfig::default()).unwrap();
            let mut ops = Ops::default();
            let child = m.fork_with(s, &mut ops);
            println!("order {order} {s}: {:?}", ops);
            m.zap(child);
        }
    }
    let r = forkmodel::oracle::check_layout::<X86_64>(
        &Layout::uniform(2 << 20, Order::new(9).unwrap()).unwrap(),
        ForkConfig::default(),
        &StrategyId::ALL,
    );
    println!("{:?}", r.map(|v| v.len()));
}
