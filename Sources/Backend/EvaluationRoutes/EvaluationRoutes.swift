import Hummingbird

/// Evaluation API under /api (evaluators, online rules, datasets, experiments, runs, comparisons,
/// scores, webhooks). (Skeleton: the evaluation issue fills it in.)
enum EvaluationRoutes {
    static func addRoutes(to group: RouterGroup<BackendRequestContext>, services: BackendServices) {}
}
