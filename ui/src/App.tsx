import { lazy, Suspense } from "react";
import { Redirect, Route, Router, Switch } from "wouter";
import { Shell } from "./components/shell";
import { Spinner } from "./components/ui";
import { ModelsPage } from "./pages/Models";

// Each page but the first is its own chunk: opening the models page never loads the chat's
// Markdown and highlighting code.
const ChatPage = lazy(() => import("./pages/Chat"));
const SettingsPage = lazy(() => import("./pages/Settings"));
const SetupPage = lazy(() => import("./pages/Setup"));
const ConfigurationPage = lazy(() => import("./pages/Configuration"));
const DownloadsPage = lazy(() => import("./pages/Downloads"));
const ActivityPage = lazy(() => import("./pages/Activity"));
const LogsPage = lazy(() => import("./pages/Logs"));

function Loading() {
  return (
    <div className="flex h-full items-center justify-center gap-2 text-sm text-ink-3">
      <Spinner /> Loading…
    </div>
  );
}

export function App() {
  return (
    <Router base="/ui">
      <Shell>
        <Suspense fallback={<Loading />}>
          <Switch>
            <Route path="/models" component={ModelsPage} />
            <Route path="/chat/:tab?" component={ChatPage} />
            <Route path="/settings" component={SettingsPage} />
            <Route path="/setup/:step?" component={SetupPage} />
            <Route path="/configuration/:tab?" component={ConfigurationPage} />
            <Route path="/downloads" component={DownloadsPage} />
            <Route path="/activity" component={ActivityPage} />
            <Route path="/logs" component={LogsPage} />
            <Route>
              <Redirect to="/models" replace />
            </Route>
          </Switch>
        </Suspense>
      </Shell>
    </Router>
  );
}
